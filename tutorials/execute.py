"""Execute a tutorial notebook in place (refreshes its committed outputs).

Usage (from the repository root; settings through the notebooks' environment variables)::

    python tutorials/execute.py tutorials/quickstart.ipynb [OUT.ipynb]

The notebook runs with ``tutorials/`` as its working directory, on the kernel of this Python.
Embedded PNG figures are stored as 256-colour palette PNGs (scatter plots of 10 000+ cells
otherwise make a notebook of several MB); ``python tutorials/execute.py --compress NB`` applies
only that step to a notebook's committed outputs.
"""

from __future__ import annotations

import base64
import io
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
    compress_figures(notebook)
    out = Path(out) if out is not None else path
    nbformat.write(notebook, out)
    return out


def compress_figures(notebook, colors: int = 256) -> None:
    """Re-encode every embedded PNG output as a palette PNG of at most ``colors`` colours."""
    from PIL import Image

    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" not in data:
                continue
            image = Image.open(io.BytesIO(base64.b64decode(data["image/png"]))).convert("RGB")
            buffer = io.BytesIO()
            image.quantize(colors).save(buffer, format="PNG", optimize=True)
            data["image/png"] = base64.b64encode(buffer.getvalue()).decode("ascii")


if __name__ == "__main__":
    if sys.argv[1] == "--compress":
        import nbformat

        for name in sys.argv[2:]:
            notebook = nbformat.read(name, as_version=4)
            compress_figures(notebook)
            nbformat.write(notebook, name)
    else:
        execute(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
