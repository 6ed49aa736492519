"""Annotators' files synced to a Hub dataset repo while they score (the Space mode): a
`huggingface_hub.CommitScheduler` commits the folder's `annotations/*.jsonl` every few
seconds when one changed, so scores made in a Space outlive the Space's disk. Saves are
appended lines (`annotation_files.save`) and the scheduler uploads whole files, so a commit
holds every save made before it; a line being written during an upload waits for the next
commit. Needs only huggingface_hub (no align2 dependency beyond the standard library)."""

from __future__ import annotations

from pathlib import Path

from align2.reward.annotation_files import ANNOTATIONS_FOLDER

SYNC_EVERY_S = 60.0


def start_sync(folder: Path, repo_id: str, *, every_s: float = SYNC_EVERY_S):
    """Start syncing `folder`'s annotator files to the dataset repo `repo_id` (created if
    missing, private), under `annotations/`. Returns the scheduler: `.trigger()` commits
    now, `.stop()` ends the background thread."""
    from huggingface_hub import CommitScheduler

    annotations = Path(folder) / ANNOTATIONS_FOLDER
    annotations.mkdir(parents=True, exist_ok=True)
    return CommitScheduler(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=annotations,
        path_in_repo=ANNOTATIONS_FOLDER,
        allow_patterns=["*.jsonl"],
        every=every_s / 60,  # the scheduler counts minutes
        private=True,  # the token: huggingface_hub's own (HF_TOKEN or `hf auth login`)
    )
