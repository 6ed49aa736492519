"""`local:DIR`: a folder with one git repository per dataset, in the Hub's dataset layout."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from align2.errors import Align2Error
from align2.publish.targets.common import (
    BRANCH,
    RELEASE_FILE,
    Published,
    git,
    ids_in,
    semver,
    tag_message,
)
from align2.publish.transaction import checkpoint, file_lock


class LocalHub:
    """One git repository per dataset under `root`, in the Hub's layout; `main` holds the
    latest release and each release is a commit with its tag.

    A release is a transaction. One build at a time holds a repository (`lock`); a dirty
    repository or a folder that align2 did not make is refused before any work. Files are
    swapped in an order that keeps the folder loadable at every instant (data files are
    named by their content hash and the card points at them: new data first, then every
    other file, the card last, then the old data goes), then committed and tagged. A build
    killed on the way leaves its lock behind; the next build takes the stale lock over,
    tags a release commit that lost its tag, and puts the files back to `main`'s release.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def repo(self, name: str) -> Path:
        return self.root / name

    def repo_id(self, name: str) -> str:
        """The card's load snippet: the folder as seen from the project (`hub/NAME`), which
        `load_dataset` reads from there, and no more of the machine's path."""
        return f"{self.root.name}/{name}"

    def describe(self, name: str) -> str:
        return (
            f'  datasets.load_dataset("{self.repo(name)}", split="train")\n'
            f"  (an older version: align2 checkout {name} vX.Y.Z --hub {self.root})"
        )

    @contextmanager
    def lock(self, name: str):
        """Hold `name` for a whole build: refuse what is not ours, mend what a killed build left."""
        with file_lock(self.root / f".{name}.lock", f"hub repository {self.repo(name)}") as stale:
            self._check(name, mend=stale)
            yield

    def _check(self, name: str, *, mend: bool) -> None:
        repo = self.repo(name)
        if not repo.exists():
            return
        if not (repo / ".git").is_dir():
            if any(repo.iterdir()):
                raise Align2Error(
                    f"{repo} exists and is not an align2 hub repository (no .git); move it "
                    "away or publish to another target (--target local:DIR)"
                )
            return
        if mend:
            self._mend(repo)
        if _has_commits(repo) and self._release_on_main(repo) is None:
            raise Align2Error(
                f"{repo} is a git repository that align2 did not make (no {RELEASE_FILE} on "
                f"{BRANCH}); publish to another target"
            )
        changes = git("status", "--porcelain", "--untracked-files=all", cwd=repo).splitlines()
        if changes:
            shown = ", ".join(line.split(maxsplit=1)[1] for line in changes[:3])
            raise Align2Error(
                f"{repo} has changes that are not in a release ({shown}"
                f"{', ...' if len(changes) > 3 else ''}); commit or discard them "
                f"(git -C {repo} stash -u) and re-run"
            )

    def _mend(self, repo: Path) -> None:
        """After a killed build: git's own stale lock goes, a release commit gets its tag, and
        the files are put back to `main`'s release (the killed build's are not in one)."""
        (repo / ".git" / "index.lock").unlink(missing_ok=True)
        if not _has_commits(repo):
            return
        release = self._release_on_main(repo)
        if release is not None and not git("tag", "--list", f"v{release['version']}", cwd=repo):
            git("tag", "-a", f"v{release['version']}", "-m", tag_message(release), BRANCH, cwd=repo)
        git("reset", "--quiet", "--hard", BRANCH, cwd=repo)
        git("clean", "--quiet", "-d", "--force", cwd=repo)

    def _release_on_main(self, repo: Path) -> dict | None:
        try:
            return json.loads(git("show", f"{BRANCH}:{RELEASE_FILE}", cwd=repo))
        except (Align2Error, json.JSONDecodeError):
            return None

    def latest(self, name: str) -> Published | None:
        """`main`'s release (a tag that is not on main names no release)."""
        repo = self.repo(name)
        if not (repo / ".git").is_dir() or not _has_commits(repo):
            return None
        release = self._release_on_main(repo)
        return None if release is None else Published(release["version"], release["content_hash"])

    def ids(self, name: str) -> set[str] | None:
        files = sorted((self.repo(name) / "data").glob("*.parquet"))
        return ids_in([str(f) for f in files]) if files else None

    def publish(self, name: str, release: Path, version: str, content_hash: str) -> str:
        """Make `release` (a complete folder) version `version` (under `lock`)."""
        repo = self.repo(name)
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True, exist_ok=True)
            git("init", "--quiet", "--initial-branch", BRANCH, cwd=repo)
        latest = self.latest(name)
        if latest is not None and semver(f"v{version}") <= semver(f"v{latest.version}"):
            raise Align2Error(
                f"{name}: v{version} is not newer than the latest release v{latest.version}; "
                "pass a newer --version"
            )
        if git("tag", "--list", f"v{version}", cwd=repo):
            raise Align2Error(f"{name} already has a tag v{version}; pass a newer --version")
        checkpoint("swap")
        _swap_in(release, repo)
        checkpoint("commit")
        git("add", "--all", cwd=repo)
        git("commit", "--quiet", "-m", f"Release v{version}", cwd=repo)
        checkpoint("tag")
        release_info = {"version": version, "content_hash": content_hash}
        git("tag", "-a", f"v{version}", "-m", tag_message(release_info), cwd=repo)
        return str(repo)

    def checkout(self, name: str, version: str, into: Path) -> Path:
        """A working copy of an older version (the repo itself stays at the latest)."""
        repo = self.repo(name)
        tag = version if version.startswith("v") else f"v{version}"
        git("clone", "--quiet", "--branch", tag, str(repo.resolve()), str(into), cwd=self.root)
        return Path(into)


def _has_commits(repo: Path) -> bool:
    try:
        git("rev-parse", "--verify", "--quiet", f"{BRANCH}^{{commit}}", cwd=repo)
    except Align2Error:
        return False
    return True


CARD = "README.md"


def _swap_in(release: Path, repo: Path) -> None:
    """Replace the repo's files by the release's, each by an atomic rename, in an order that
    keeps the folder loadable at every instant: new files (the content-named data among them)
    first, the card that points at them last, then the files the release no longer has."""
    new = sorted(p.relative_to(release) for p in release.rglob("*") if p.is_file())
    for relative in sorted(new, key=lambda p: p.as_posix() == CARD):
        if relative.as_posix() == CARD:
            checkpoint("swap-card")
        target = repo / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(release / relative, partial)
        os.replace(partial, target)
    checkpoint("swap-cleanup")
    keep = {repo / p for p in new}
    for old in sorted(repo.rglob("*"), reverse=True):  # children before their folders
        if ".git" in old.relative_to(repo).parts:
            continue
        if old.is_file() and old not in keep:
            old.unlink()
        elif old.is_dir() and not any(old.iterdir()):
            old.rmdir()
