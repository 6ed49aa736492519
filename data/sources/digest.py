"""Content digests for provenance and cache keys: what a card names a local input by."""

from __future__ import annotations

import hashlib
from pathlib import Path


def _update(digest, path: Path) -> None:
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    _update(digest, Path(path))
    return digest.hexdigest()


def folder_sha256(folder: str | Path) -> str:
    """sha256 over every file's relative path and bytes, in path order (hidden files and
    caches such as `.cache/` left out)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for file in files:
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0")
        _update(digest, file)
    return digest.hexdigest()
