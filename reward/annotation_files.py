"""The annotation folder's files, with the standard library only: the scoring app (which runs
where only gradio is installed, e.g. a Space) and `align2.reward.annotate` share them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from align2.errors import Align2Error

TASKS_FILE, ORIGINS_FILE, CRITERIA_FILE = "tasks.jsonl", "origins.jsonl", "criteria.md"
ANNOTATIONS_FOLDER = "annotations"
STEP = 0.05  # a score's resolution
MAX_CANDIDATES = 7  # per item: the seed's original and six variants, what the app shows
CRITERIA = """# Scoring criteria

Score each candidate from 0 (unusable) to 1 (ideal), in steps of 0.05.

Subjective: helpful; fluent; detailed where the question asks for detail.

Objective: faithful to the image; no hallucinated object, attribute, count or relation;
answers the question that was asked (for questions: one the image can answer).
"""


def read_tasks(folder: Path) -> list[dict]:
    path = Path(folder) / TASKS_FILE
    if not path.is_file():
        raise Align2Error(f"{folder} holds no {TASKS_FILE}: run `align2 annotate prepare` first")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def read_annotator(path: Path) -> dict[str, dict]:
    """An annotator's latest save per item (a torn last line, from a killed writer, skipped)."""
    latest = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        latest[record["id"]] = record
    return latest


def save(
    folder: Path,
    annotator: str,
    item: str,
    scores: list[float],
    *,
    flagged: bool = False,
    skipped: bool = False,
) -> None:
    """Append one save: a single line, flushed to disk before returning."""
    scores = [round(round(float(s) / STEP) * STEP, 2) for s in scores]
    if any(not 0 <= s <= 1 for s in scores):
        raise Align2Error("scores are between 0 and 1")
    path = annotator_file(folder, annotator)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"id": item, "scores": scores, "flagged": flagged, "skipped": skipped}
    torn = path.exists() and path.stat().st_size and _last_byte(path) != b"\n"
    with open(path, "a", encoding="utf-8") as f:
        # After a killed writer's torn line, start a new line: this save must not join it.
        f.write(("\n" if torn else "") + json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def annotator_file(folder: Path, name: str) -> Path:
    """The file an annotator's saves go to."""
    return Path(folder) / ANNOTATIONS_FOLDER / f"{_annotator_name(name)}.jsonl"


def _annotator_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in name.strip())[:64]
    if not cleaned.strip("_"):
        raise Align2Error(f"{name!r} is not a usable annotator name (letters, digits, - or _)")
    return cleaned
