"""`hub:ORG/NAME`: a dataset repository on the Hugging Face Hub (or a server speaking its API),
through `huggingface_hub` (token from `hf auth login` or `HF_TOKEN`, endpoint from
`HF_ENDPOINT`)."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from align2.errors import Align2Error
from align2.publish.targets.common import (
    BRANCH,
    RELEASE_FILE,
    Published,
    ids_in,
    semver,
    tag_message,
)
from align2.publish.transaction import checkpoint

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
                    tag_message=tag_message(release),
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
        return ids_in(data, HfFileSystem()) if data else None

    def _head_for(self, tag: str) -> str:
        """main's commit, once `tag` is known to be new and newer than the latest release."""
        refs = self._refs()
        if any(t.name == tag for t in refs.tags):
            raise Align2Error(f"{self._repo_id} already has version {tag}; pass a newer --version")
        head = self._main(refs)
        latest = self._release_at(head)
        if latest is not None and semver(tag) <= semver(f"v{latest['version']}"):
            raise Align2Error(
                f"{self._repo_id}: {tag} is not newer than the latest release "
                f"v{latest['version']}; pass a newer --version"
            )
        return head

    def _operations(self, release: Path, head: str) -> list:
        """Add every file of the release; delete what head has beyond it (.gitattributes aside)."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        current = self._retry(
            "listing files",
            lambda: self.api.list_repo_files(
                self._repo_id, repo_type=self.repo_type, revision=head
            ),
        )
        files = sorted(p for p in release.rglob("*") if p.is_file())
        new = {p.relative_to(release).as_posix() for p in files}
        return [
            CommitOperationAdd(path_in_repo=p.relative_to(release).as_posix(), path_or_fileobj=p)
            for p in files
        ] + [
            CommitOperationDelete(path_in_repo=p)
            for p in sorted(current)
            if p not in new and p != ".gitattributes"
        ]

    def publish(self, name: str, release: Path, version: str, content_hash: str) -> str:
        """One commit replacing every file (but .gitattributes), then the tag on it."""
        tag = f"v{version}"
        self._retry(
            "creating the repository",
            lambda: self.api.create_repo(
                self._repo_id, repo_type=self.repo_type, private=self.private, exist_ok=True
            ),
        )
        head = self._head_for(tag)
        operations = self._operations(release, head)
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
