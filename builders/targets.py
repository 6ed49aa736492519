"""Publishing targets. The local hub: a folder with one git repository per dataset in the
Hub's dataset layout; each release is one commit and one annotated tag `vX.Y.Z` whose
message records the content hash (so an unchanged rebuild publishes nothing).

A release is committed in a temporary clone and only then fast-forwarded into the
repository: a build that fails or is killed before that leaves the previous version as it
was."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from align2.errors import Align2Error

HASH_LINE = re.compile(r"^content-hash: ([0-9a-f]{64})$", re.M)
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


class LocalHub:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def repo(self, name: str) -> Path:
        return self.root / name

    def latest(self, name: str) -> Published | None:
        repo = self.repo(name)
        if not (repo / ".git").is_dir():
            return None
        tags = git("tag", "--list", "v*", "--sort=-v:refname", cwd=repo).split()
        if not tags:
            return None
        message = git("tag", "--list", tags[0], "--format=%(contents)", cwd=repo)
        found = HASH_LINE.search(message)
        return Published(tags[0][1:], found.group(1) if found else "")

    def publish(self, name: str, release: Path, version: str, content_hash: str) -> Path:
        """Commit `release` (a complete folder) as version `version`; return the repo path."""
        repo = self.repo(name)
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True, exist_ok=True)
            git("init", "--quiet", "--initial-branch", BRANCH, cwd=repo)
            # A push may update the checked-out branch and its files (the repo is not bare).
            git("config", "receive.denyCurrentBranch", "updateInstead", cwd=repo)
        if git("tag", "--list", f"v{version}", cwd=repo):
            raise Align2Error(f"{name} already has version v{version}; pass a newer --version")
        with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=self.root) as tmp:
            clone = Path(tmp) / name
            git("clone", "--quiet", str(repo.resolve()), str(clone), cwd=self.root)
            for old in clone.iterdir():  # the release replaces every file but git's own
                if old.name != ".git":
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
            shutil.copytree(release, clone, dirs_exist_ok=True)
            git("add", "--all", cwd=clone)
            git("commit", "--quiet", "-m", f"Release v{version}", cwd=clone)
            message = f"align2 release v{version}\n\ncontent-hash: {content_hash}\n"
            git("tag", "-a", f"v{version}", "-m", message, cwd=clone)
            git("push", "--quiet", "origin", f"HEAD:{BRANCH}", f"v{version}", cwd=clone)
        return repo

    def checkout(self, name: str, version: str, into: Path) -> Path:
        """A working copy of an older version (the repo itself stays at the latest)."""
        repo = self.repo(name)
        tag = version if version.startswith("v") else f"v{version}"
        git("clone", "--quiet", "--branch", tag, str(repo.resolve()), str(into), cwd=self.root)
        return Path(into)
