"""What both targets share: git, versions, the release file, the ids a release holds."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from align2.errors import Align2Error

RELEASE_FILE = "release.json"  # {"version", "content_hash"}, in every release
IDENTITY = ["-c", "user.name=align2", "-c", "user.email=align2@localhost"]
BRANCH = "main"


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise Align2Error(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass(frozen=True)
class Published:
    version: str
    content_hash: str


def bump_patch(version: str) -> str:
    major, minor, patch = (int(x) for x in version.split("."))
    return f"{major}.{minor}.{patch + 1}"


def semver(tag: str) -> tuple[int, ...] | None:
    found = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", tag)
    return tuple(int(x) for x in found.groups()) if found else None


def ids_in(paths: list[str], filesystem=None) -> set[str]:
    """Row ids of curated data files: only the `id` column is read (range reads on the Hub)."""
    return {
        i
        for path in paths
        for i in pq.read_table(path, columns=["id"], filesystem=filesystem).column("id").to_pylist()
    }


def tag_message(release: dict) -> str:
    return f"align2 release v{release['version']}\n\ncontent-hash: {release['content_hash']}\n"
