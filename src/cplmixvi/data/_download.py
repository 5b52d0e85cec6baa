"""Download a file with a progress bar and an optional SHA-256 check (used by the loaders)."""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.request
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["download", "sha256sum"]


def sha256sum(path: str | Path, block: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in blocks of ``block`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: str | Path, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (kept when it exists) and check its SHA-256.

    The file is written to ``dest.part`` first and renamed once complete, so an interrupted
    download is never mistaken for a finished one.

    Parameters
    ----------
    url
        Address to fetch.
    dest
        Target file; its folder is created.
    sha256
        Expected SHA-256 hex digest; ``None`` skips the check and logs the digest instead.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    ValueError
        If the digest of the file differs from ``sha256`` (the partial file is removed).
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        logger.info("downloading %s to %s", url, dest)
        with urllib.request.urlopen(url) as response, open(part, "wb") as out:  # noqa: S310
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        shutil.move(part, dest)
    digest = sha256sum(dest)
    if sha256 is None:
        logger.info("%s: sha256 %s (no checksum on record to compare with)", dest.name, digest)
    elif digest != sha256.lower():
        dest.unlink()
        raise ValueError(
            f"Checksum mismatch for {dest.name} from {url}: expected sha256 {sha256}, got "
            f"{digest}. The file was removed; download it again or pass the file you trust."
        )
    return dest
