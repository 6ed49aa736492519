"""Publishing targets: where a finished release folder goes, one commit and one tag
`vX.Y.Z` per release. Each target can say which version is the latest and with what content
hash (so an unchanged rebuild publishes nothing), and which row ids it holds (the changelog).

- `LocalHub` (`local:DIR`): a folder with one git repository per dataset in the Hub's dataset
  layout; the annotated tag's message records the content hash. A release is committed in a
  temporary clone and only then pushed into the repository: a build that fails or is killed
  before that leaves the previous version as it was.
- `HubTarget` (`hub:ORG/NAME`): the Hugging Face Hub through `huggingface_hub` (token from
  `hf auth login` or `HF_TOKEN`, endpoint from `HF_ENDPOINT`). The release is one
  `create_commit` (atomic on the Hub, and refused if the branch moved since we looked), then
  `create_tag`; `release.json` in the release records the content hash.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

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
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def repo(self, name: str) -> Path:
        return self.root / name

    def repo_id(self, name: str) -> str:
        return name  # the card's load snippet: the name it would have on a Hub

    def describe(self, name: str) -> str:
        return (
            f'  datasets.load_dataset("{self.repo(name)}", split="train")\n'
            f"  (an older version: align2 checkout {name} vX.Y.Z --hub {self.root})"
        )

    def ids(self, name: str) -> set[str] | None:
        files = sorted((self.repo(name) / "data").glob("*.parquet"))
        return _ids_in([str(f) for f in files]) if files else None

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

    def publish(self, name: str, release: Path, version: str, content_hash: str) -> str:
        """Commit `release` (a complete folder) as version `version`; return where it is."""
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
        return str(repo)

    def checkout(self, name: str, version: str, into: Path) -> Path:
        """A working copy of an older version (the repo itself stays at the latest)."""
        repo = self.repo(name)
        tag = version if version.startswith("v") else f"v{version}"
        git("clone", "--quiet", "--branch", tag, str(repo.resolve()), str(into), cwd=self.root)
        return Path(into)


class HubTarget:
    """A dataset repository on the Hugging Face Hub (or any server speaking its API)."""

    repo_type = "dataset"

    def __init__(self, repo_id: str, *, private: bool = False):
        from huggingface_hub import HfApi

        self.api = HfApi()  # token and endpoint the usual way: never passed through us
        self._repo_id = repo_id
        self.private = private

    def repo_id(self, name: str) -> str:
        return self._repo_id

    def describe(self, name: str) -> str:
        return f'  datasets.load_dataset("{self._repo_id}", revision="vX.Y.Z", split="train")'

    def _refs(self):
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            return self.api.list_repo_refs(self._repo_id, repo_type=self.repo_type)
        except RepositoryNotFoundError:
            return None

    def _tags(self) -> dict[str, str] | None:
        """Release tags -> commits; None when the repo does not exist."""
        refs = self._refs()
        return (
            None
            if refs is None
            else {t.name: t.target_commit for t in refs.tags if _semver(t.name)}
        )

    def latest(self, name: str) -> Published | None:
        from huggingface_hub.errors import EntryNotFoundError

        tags = self._tags()
        if not tags:
            return None
        tag = max(tags, key=_semver)
        try:
            path = self.api.hf_hub_download(
                self._repo_id, RELEASE_FILE, repo_type=self.repo_type, revision=tags[tag]
            )
        except EntryNotFoundError:  # not made by align2: any release differs from it
            return Published(tag[1:], "")
        return Published(tag[1:], json.loads(Path(path).read_text())["content_hash"])

    def ids(self, name: str) -> set[str] | None:
        from huggingface_hub import HfFileSystem

        tags = self._tags()
        if not tags:
            return None
        commit = tags[max(tags, key=_semver)]
        files = self.api.list_repo_files(self._repo_id, repo_type=self.repo_type, revision=commit)
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
        self.api.create_repo(
            self._repo_id, repo_type=self.repo_type, private=self.private, exist_ok=True
        )
        refs = self._refs()
        if any(t.name == tag for t in refs.tags):
            raise Align2Error(f"{self._repo_id} already has version {tag}; pass a newer --version")
        head = next(b.target_commit for b in refs.branches if b.name == "main")
        current = self.api.list_repo_files(self._repo_id, repo_type=self.repo_type, revision=head)
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
        commit = self.api.create_commit(
            self._repo_id,
            operations,
            commit_message=f"Release {tag}",
            commit_description=f"content-hash: {content_hash}",
            repo_type=self.repo_type,
            parent_commit=head,  # refused if someone else published since we looked
        )
        self.api.create_tag(
            self._repo_id,
            tag=tag,
            tag_message=f"align2 release {tag}\n\ncontent-hash: {content_hash}\n",
            revision=commit.oid,
            repo_type=self.repo_type,
        )
        return f"{self.api.endpoint}/datasets/{self._repo_id}/tree/{tag}"


def parse_target(target: str, project_root: Path) -> LocalHub | HubTarget:
    """`local:DIR` (relative to the project) or `hub:ORG/NAME`."""
    if target.startswith("local:"):
        folder = Path(target.removeprefix("local:"))
        return LocalHub(folder if folder.is_absolute() else project_root / folder)
    if re.fullmatch(r"hub:[^/\s]+/[^/\s]+", target):
        return HubTarget(target.removeprefix("hub:"))
    raise Align2Error(f"target {target!r}: expected local:DIR or hub:ORG/NAME")
