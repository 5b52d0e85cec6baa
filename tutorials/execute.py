"""Execute a tutorial notebook in place (refreshes its committed outputs).

Usage (from the repository root; settings through the notebooks' environment variables)::

    python tutorials/execute.py tutorials/quickstart.ipynb [OUT.ipynb]

The notebook runs with ``tutorials/`` as its working directory, on the kernel of this Python.
"""

from __future__ import annotations

import sys
from pathlib import Path


def execute(path: str | Path, out: str | Path | None = None, timeout: int = 3600) -> Path:
    """Run every cell of the notebook at ``path`` and write it, with outputs, to ``out``."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.resolve().parent)}},
    )
    client.execute()
    out = Path(out) if out is not None else path
    nbformat.write(notebook, out)
    return out


if __name__ == "__main__":
    execute(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
