"""Publishing targets: where a finished release folder goes, one commit and one tag
`vX.Y.Z` per release. Each target can say which version is the latest and with what content
hash (so an unchanged rebuild publishes nothing), and which row ids it holds (the changelog).

- `LocalHub` (`local:DIR`): a folder with one git repository per dataset in the Hub's dataset
  layout; `main`'s `release.json` names the latest release, and its annotated tag records
  the content hash too. A release is a transaction (see the class).
- `HubTarget` (`hub:ORG/NAME`): the Hugging Face Hub through `huggingface_hub` (token from
  `hf auth login` or `HF_TOKEN`, endpoint from `HF_ENDPOINT`). The release is one
  `create_commit` (atomic on the Hub, and refused if the branch moved since we looked), then
  `create_tag`; `release.json` in the release records the content hash.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from align2.builders.transaction import checkpoint, file_lock
from align2.errors import Align2Error

RELEASE_FILE = "release.json"  # {"version", "content_hash"}, in every release
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


def _semver(tag: str) -> tuple[int, ...] | None:
    found = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", tag)
    return tuple(int(x) for x in found.groups()) if found else None


def _ids_in(paths: list[str], filesystem=None) -> set[str]:
    """Row ids of curated data files: only the `id` column is read (range reads on the Hub)."""
    return {
        i
        for path in paths
        for i in pq.read_table(path, columns=["id"], filesystem=filesystem).column("id").to_pylist()
    }


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
            git(
                "tag", "-a", f"v{release['version']}", "-m", _tag_message(release), BRANCH, cwd=repo
            )
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
        return _ids_in([str(f) for f in files]) if files else None

    def publish(self, name: str, release: Path, version: str, content_hash: str) -> str:
        """Make `release` (a complete folder) version `version` (under `lock`)."""
        repo = self.repo(name)
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True, exist_ok=True)
            git("init", "--quiet", "--initial-branch", BRANCH, cwd=repo)
        latest = self.latest(name)
        if latest is not None and _semver(f"v{version}") <= _semver(f"v{latest.version}"):
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
        git("tag", "-a", f"v{version}", "-m", _tag_message(release_info), cwd=repo)
        return str(repo)

    def checkout(self, name: str, version: str, into: Path) -> Path:
        """A working copy of an older version (the repo itself stays at the latest)."""
        repo = self.repo(name)
        tag = version if version.startswith("v") else f"v{version}"
        git("clone", "--quiet", "--branch", tag, str(repo.resolve()), str(into), cwd=self.root)
        return Path(into)


def _tag_message(release: dict) -> str:
    return f"align2 release v{release['version']}\n\ncontent-hash: {release['content_hash']}\n"


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


TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)  # as huggingface_hub's own backoff
RETRIES, BACKOFF_S = 4, 0.5


def _transient(error: Exception) -> bool:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(error, HfHubHTTPError):
        return error.response is not None and error.response.status_code in TRANSIENT_STATUS
    return isinstance(
        error, (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
    )


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


class HubTarget:
    """A dataset repository on the Hugging Face Hub (or any server speaking its API).

    `main`'s `release.json` names the latest release. A release is one `create_commit`
    (atomic on the Hub, refused if `main` moved since we looked: `parent_commit`), then its
    tag. Calls that failed in transit are tried again with backoff (huggingface_hub retries
    the uploads itself, not the commit or the tag): a commit whose answer was lost is found
    on `main` rather than made twice, and a release commit left without its tag (the build
    died, or the tag never got through) is tagged by the next build."""

    repo_type = "dataset"

    def __init__(self, repo_id: str, *, private: bool = False):
        from huggingface_hub import HfApi

        self.api = HfApi()  # token and endpoint the usual way: never passed through us
        self._repo_id = repo_id
        self.private = private

    def repo_id(self, name: str) -> str:
        return self._repo_id

    @contextmanager
    def lock(self, name: str):
        """The Hub orders commits itself (`parent_commit`); this only finishes a release
        commit that an earlier build left without its tag."""
        self._finish_tag()
        yield

    def describe(self, name: str) -> str:
        return f'  datasets.load_dataset("{self._repo_id}", revision="vX.Y.Z", split="train")'

    def _retry(self, what: str, call):
        for attempt in range(RETRIES):
            try:
                return call()
            except Exception as error:
                if not _transient(error):
                    raise
                if attempt == RETRIES - 1:
                    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
                    raise Align2Error(
                        f"{self._repo_id}: {what} failed {RETRIES} times ({detail}); re-run "
                        "the build: what was published is finished or left as it was"
                    ) from None
                time.sleep(BACKOFF_S * 2**attempt)

    def _refs(self):
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            return self._retry(
                "reading the refs",
                lambda: self.api.list_repo_refs(self._repo_id, repo_type=self.repo_type),
            )
        except RepositoryNotFoundError:
            return None

    def _main(self, refs) -> str | None:
        return next((b.target_commit for b in refs.branches if b.name == BRANCH), None)

    def _release_at(self, commit: str) -> dict | None:
        from huggingface_hub.errors import EntryNotFoundError

        try:
            path = self._retry(
                "reading release.json",
                lambda: self.api.hf_hub_download(
                    self._repo_id, RELEASE_FILE, repo_type=self.repo_type, revision=commit
                ),
            )
        except EntryNotFoundError:  # not made by align2
            return None
        return json.loads(Path(path).read_text())

    def _finish_tag(self) -> None:
        refs = self._refs()
        head = None if refs is None else self._main(refs)
        release = None if head is None else self._release_at(head)
        if release is not None and f"v{release['version']}" not in {t.name for t in refs.tags}:
            self._tag(release, head)

    def _tag(self, release: dict, commit: str) -> None:
        tag = f"v{release['version']}"

        def create():
            try:
                self.api.create_tag(
                    self._repo_id,
                    tag=tag,
                    tag_message=_tag_message(release),
                    revision=commit,
                    repo_type=self.repo_type,
                )
            except Exception as error:  # a retry of a tag that got through: it exists
                if _status(error) != 409:
                    raise
                tags = {t.name: t.target_commit for t in self._refs().tags}
                if tags.get(tag) != commit:
                    raise Align2Error(
                        f"{self._repo_id} has a tag {tag} on another commit"
                    ) from None

        self._retry(f"tagging {tag}", create)

    def latest(self, name: str) -> Published | None:
        """`main`'s release (a tag that is not on main names no release)."""
        refs = self._refs()
        head = None if refs is None else self._main(refs)
        release = None if head is None else self._release_at(head)
        return None if release is None else Published(release["version"], release["content_hash"])

    def ids(self, name: str) -> set[str] | None:
        from huggingface_hub import HfFileSystem

        refs = self._refs()
        commit = None if refs is None else self._main(refs)
        if commit is None:
            return None
        files = self._retry(
            "listing files",
            lambda: self.api.list_repo_files(
                self._repo_id, repo_type=self.repo_type, revision=commit
            ),
        )
        data = [
            f"datasets/{self._repo_id}@{commit}/{f}"
            for f in sorted(files)
            if f.startswith("data/") and f.endswith(".parquet")
        ]
        return _ids_in(data, HfFileSystem()) if data else None

    def publish(self, name: str, release: Path, version: str, content_hash: str) -> str:
        """One commit replacing every file (but .gitattributes), then the tag on it."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        tag = f"v{version}"
        self._retry(
            "creating the repository",
            lambda: self.api.create_repo(
                self._repo_id, repo_type=self.repo_type, private=self.private, exist_ok=True
            ),
        )
        refs = self._refs()
        if any(t.name == tag for t in refs.tags):
            raise Align2Error(f"{self._repo_id} already has version {tag}; pass a newer --version")
        head = self._main(refs)
        latest = self._release_at(head)
        if latest is not None and _semver(tag) <= _semver(f"v{latest['version']}"):
            raise Align2Error(
                f"{self._repo_id}: {tag} is not newer than the latest release "
                f"v{latest['version']}; pass a newer --version"
            )
        current = self._retry(
            "listing files",
            lambda: self.api.list_repo_files(
                self._repo_id, repo_type=self.repo_type, revision=head
            ),
        )
        files = sorted(p for p in release.rglob("*") if p.is_file())
        new = {p.relative_to(release).as_posix() for p in files}
        operations = [
            CommitOperationAdd(path_in_repo=p.relative_to(release).as_posix(), path_or_fileobj=p)
            for p in files
        ] + [
            CommitOperationDelete(path_in_repo=p)
            for p in sorted(current)
            if p not in new and p != ".gitattributes"
        ]
        info = {"version": version, "content_hash": content_hash}

        def commit() -> str:
            try:
                return self.api.create_commit(
                    self._repo_id,
                    operations,
                    commit_message=f"Release {tag}",
                    commit_description=f"content-hash: {content_hash}",
                    repo_type=self.repo_type,
                    parent_commit=head,  # refused if someone else published since we looked
                ).oid
            except Exception as error:
                if not _transient(error):
                    if _status(error) == 412:
                        raise Align2Error(
                            f"{self._repo_id}: main moved while this build published; re-run"
                        ) from None
                    raise
                now = self._main(self._refs())  # did it land before the answer was lost?
                if now != head and self._release_at(now) == info:
                    return now
                raise

        checkpoint("hub-commit")
        oid = self._retry(f"committing {tag}", commit)
        checkpoint("hub-tag")
        self._tag(info, oid)
        return f"{self.api.endpoint}/datasets/{self._repo_id}/tree/{tag}"


def parse_target(target: str, project_root: Path) -> LocalHub | HubTarget:
    """`local:DIR` (relative to the project) or `hub:ORG/NAME`."""
    if target.startswith("local:"):
        folder = Path(target.removeprefix("local:"))
        return LocalHub(folder if folder.is_absolute() else project_root / folder)
    if re.fullmatch(r"hub:[^/\s]+/[^/\s]+", target):
        return HubTarget(target.removeprefix("hub:"))
    raise Align2Error(f"target {target!r}: expected local:DIR or hub:ORG/NAME")
