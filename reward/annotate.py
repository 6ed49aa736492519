"""Human preference annotation, the method's first step: candidates to score, and the scores
turned into the seed's annotation files that `align2 reward train` reads.

An annotation folder holds
- `tasks.jsonl`: what annotators see, one item per line: id, kind (question | answer),
  image (a file in `images/`), the question (answer items), and the candidates in a per-item
  random order;
- `origins.jsonl`: where each shown candidate came from (original, shuffle, crop, duplicate),
  kept apart so the annotator never sees it;
- `criteria.md`: what a score means;
- `annotations/<annotator>.jsonl`: one line per save, `{"id", "scores", "flagged",
  "skipped"}`, scores 0-1 in steps of 0.05 per shown candidate; the last line for an id
  wins, and a torn last line (a killed writer) is ignored, so a save is one appended line.

Export resolves several annotators by the mean and reports their agreement: Krippendorff's
alpha (interval) over every (item, candidate) score, and how often two annotators order a
pair of candidates the same way.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from align2.builders.schema import GPT, HUMAN, IMAGE_TOKEN
from align2.errors import Align2Error
from align2.reward.annotations import CORRUPTIONS
from align2.reward.templates import ANSWER, QUESTION

TASKS_FILE, ORIGINS_FILE, CRITERIA_FILE = "tasks.jsonl", "origins.jsonl", "criteria.md"
ANNOTATIONS_FOLDER = "annotations"
QUESTIONS_FILE, ANSWERS_FILE, AGREEMENT_FILE = "questions.json", "answers.json", "agreement.json"
STEP = 0.05  # a score's resolution
RESOLUTION = "mean"  # several annotators' scores for a candidate become their mean
CRITERIA = """# Scoring criteria

Score each candidate from 0 (unusable) to 1 (ideal), in steps of 0.05.

Subjective: helpful; fluent; detailed where the question asks for detail.

Objective: faithful to the image; no hallucinated object, attribute, count or relation;
answers the question that was asked (for questions: one the image can answer).
"""


def prepare(
    rows: Sequence[dict],
    images: Sequence[bytes],
    out: Path,
    *,
    size: int | None = None,
    candidates: int = 7,
    seed: int = 0,
) -> int:
    """Write an annotation folder for `size` rows drawn from `rows` (all when None): one
    question item and one answer item per row, from its first turn. `images[i]` holds row
    i's image bytes. Returns the number of items."""
    if candidates < 2:
        raise Align2Error("an item needs at least 2 candidates to compare")
    out = Path(out)
    if (out / TASKS_FILE).exists():
        raise Align2Error(f"{out} already holds annotation tasks; prepare into a new folder")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(rows)), size)) if size is not None else range(len(rows))
    (out / "images").mkdir(parents=True, exist_ok=True)
    tasks, origins = [], []
    for index in chosen:
        row = rows[index]
        question, answer = _first_turn(row["conversations"])
        image = f"{len(tasks) // 2:05d}.png"
        (out / "images" / image).write_bytes(images[index])
        for kind, prompt, original in ((QUESTION, "", question), (ANSWER, question, answer)):
            texts, names = _candidates(original, kind, candidates, rng)
            order = list(range(len(texts)))
            rng.shuffle(order)  # the original is not always first
            item = f"{row['id']}:{kind}"
            shown = [texts[i] for i in order]
            tasks.append(
                {"id": item, "kind": kind, "image": image, "question": prompt, "candidates": shown}
            )
            origins.append({"id": item, "source": row["id"], "origins": [names[i] for i in order]})
    _write_lines(out / TASKS_FILE, tasks)
    _write_lines(out / ORIGINS_FILE, origins)
    (out / CRITERIA_FILE).write_text(CRITERIA, encoding="utf-8")
    (out / ANNOTATIONS_FOLDER).mkdir(exist_ok=True)
    return len(tasks)


def _first_turn(conversations: list[dict]) -> tuple[str, str]:
    question = next((t["value"] for t in conversations if t["from"] == HUMAN), "")
    answer = next((t["value"] for t in conversations if t["from"] == GPT), "")
    return question.replace(IMAGE_TOKEN, "").strip(), answer.strip()


def _candidates(original: str, kind: str, n: int, rng: random.Random):
    """The original and up to n - 1 distinct corruptions of it (the seed's: shuffled words,
    a cropped span, for questions a duplicated line)."""
    methods = sorted(m for m in CORRUPTIONS if kind == QUESTION or m != "duplicate")
    texts, names = [original], ["original"]
    for attempt in range(8 * n):
        if len(texts) == n:
            break
        method = methods[attempt % len(methods)]
        text = CORRUPTIONS[method](original, rng)
        if text and text not in texts:
            texts.append(text)
            names.append(method)
    return texts, names


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
    path = Path(folder) / ANNOTATIONS_FOLDER / f"{_annotator_name(annotator)}.jsonl"
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


def _annotator_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in name.strip())[:64]
    if not cleaned.strip("_"):
        raise Align2Error(f"{name!r} is not a usable annotator name (letters, digits, - or _)")
    return cleaned


def export(folder: Path, out: Path) -> dict:
    """Seed-format question and answer files (mean scores) and the agreement report, from
    every annotator's file. Items nobody scored are left out. Returns the report."""
    folder, out = Path(folder), Path(out)
    tasks = read_tasks(folder)
    annotators = {
        path.stem: read_annotator(path)
        for path in sorted((folder / ANNOTATIONS_FOLDER).glob("*.jsonl"))
    }
    scored = {
        name: {i: r for i, r in saves.items() if not r.get("skipped")}
        for name, saves in annotators.items()
    }
    questions, answers, units = [], [], []
    (out / "images").mkdir(parents=True, exist_ok=True)
    for task in tasks:
        given = [s[task["id"]]["scores"] for s in scored.values() if task["id"] in s]
        given = [g for g in given if len(g) == len(task["candidates"])]
        units.append((task, [s.get(task["id"], {}).get("scores") for s in scored.values()]))
        if not given:
            continue
        mean = [round(float(v), 4) for v in np.mean(given, axis=0)]
        shutil.copyfile(folder / "images" / task["image"], out / "images" / task["image"])
        record = {"id": task["id"], "image": task["image"]}
        if task["kind"] == QUESTION:
            shown = [[f"{IMAGE_TOKEN}\n{c}"] for c in task["candidates"]]
            questions.append({**record, "questions": shown, "score": mean})
        else:
            ask = {"from": HUMAN, "value": f"{IMAGE_TOKEN}\n{task['question']}"}
            reply = {"from": GPT, "value": task["candidates"], "score": mean}
            answers.append({**record, "conversations": [ask, reply]})
    for name, records in ((QUESTIONS_FILE, questions), (ANSWERS_FILE, answers)):
        (out / name).write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    report = {
        "annotators": sorted(annotators),
        "items": len(tasks),
        "exported": {"question": len(questions), "answer": len(answers)},
        "flagged": sorted(
            {i for s in annotators.values() for i, r in s.items() if r.get("flagged")}
        ),
        "resolution": RESOLUTION,
        **agreement([scores for _, scores in units]),
    }
    (out / AGREEMENT_FILE).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


def agreement(items: list[list[list[float] | None]]) -> dict:
    """Per item, each annotator's scores (None: not scored). Krippendorff's alpha (interval)
    over every (item, candidate) unit, and the share of candidate pairs two annotators both
    order strictly that they order the same way. None where fewer than two annotators
    scored the same item."""
    import krippendorff

    n_annotators = max((len(a) for a in items), default=0)
    columns, same, compared = [], 0, 0
    for scores in items:
        width = max((len(s) for s in scores if s), default=0)
        for candidate in range(width):
            columns.append([s[candidate] if s and candidate < len(s) else np.nan for s in scores])
        given = [s for s in scores if s]
        for a, b in itertools.combinations(given, 2):
            for i, j in itertools.combinations(range(min(len(a), len(b))), 2):
                if a[i] != a[j] and b[i] != b[j]:
                    compared += 1
                    same += (a[i] > a[j]) == (b[i] > b[j])
    data = np.array(columns, dtype=float).T if columns else np.empty((n_annotators, 0))
    pairable = int(np.sum(np.sum(~np.isnan(data), axis=0) >= 2)) if data.size else 0
    alpha = None
    if pairable and len(np.unique(data[~np.isnan(data)])) > 1:
        alpha = round(float(krippendorff.alpha(data, level_of_measurement="interval")), 4)
    return {
        "krippendorff_alpha": alpha,
        "units_scored_twice": pairable,
        "pair_order_agreement": round(same / compared, 4) if compared else None,
        "pairs_compared": compared,
    }


def _write_lines(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
