"""``save`` that never damages a model saved before: write aside, then rename into place."""

from __future__ import annotations

import os
import shutil
import tempfile

from cplmixvi.train._checkpoint import fsync_tree

MODEL_FILE = "model.pt"


class AtomicSaveMixin:
    """:meth:`save` of :class:`~scvi.model.base.BaseModelClass`, made atomic."""

    def save(self, dir_path: str, prefix: str | None = None, overwrite: bool = False, **kwargs):
        """Save the model like :meth:`scvi.model.base.BaseModelClass.save`, atomically.

        The files are written into a temporary folder next to ``dir_path`` and moved into it
        only once all are complete (``model.pt`` last), each by an atomic rename. A save that
        fails (no permission, a full disk) or is interrupted raises an ``OSError`` saying so
        and leaves a model saved in ``dir_path`` before unchanged and loadable.
        """
        if os.path.exists(dir_path) and not overwrite:
            raise ValueError(
                f"{dir_path} already exists. Please provide another directory for saving."
            )
        parent = os.path.dirname(os.path.abspath(dir_path))
        try:
            os.makedirs(parent, exist_ok=True)
            staging = tempfile.mkdtemp(prefix=f".{os.path.basename(dir_path)}.saving-", dir=parent)
        except OSError as error:
            raise OSError(f"Cannot save the model to {dir_path}: {error}") from error
        try:
            super().save(staging, prefix=prefix, overwrite=True, **kwargs)
            fsync_tree(staging)
            _move_files(staging, dir_path, last=f"{prefix or ''}{MODEL_FILE}")
        except OSError as error:
            raise OSError(
                f"Saving the model to {dir_path} failed ({error}); a model saved there before is "
                "unchanged."
            ) from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _move_files(source: str, target: str, last: str) -> None:
    """Move every file of ``source`` into ``target`` by atomic renames, ``last`` at the end."""
    os.makedirs(target, exist_ok=True)
    names = sorted(os.listdir(source), key=lambda name: name == last)
    for name in names:
        os.replace(os.path.join(source, name), os.path.join(target, name))
    fsync_tree(target)
