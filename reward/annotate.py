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
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from align2.data.schema import GPT, HUMAN, IMAGE_TOKEN
from align2.errors import Align2Error
from align2.reward.annotation_files import (
    ANNOTATIONS_FOLDER,
    CRITERIA,
    CRITERIA_FILE,
    MAX_CANDIDATES,
    ORIGINS_FILE,
    TASKS_FILE,
    read_annotator,
    read_tasks,
)
from align2.reward.annotations import CORRUPTIONS
from align2.reward.candidates import GeneratorConfig, generated_variants, least_sure_rows
from align2.reward.templates import ANSWER, QUESTION

QUESTIONS_FILE, ANSWERS_FILE, AGREEMENT_FILE = "questions.json", "answers.json", "agreement.json"
RESOLUTION = "mean"  # several annotators' scores for a candidate become their mean


def prepare(
    rows: Sequence[dict],
    images: Sequence[bytes],
    out: Path,
    *,
    size: int | None = None,
    candidates: int = 7,
    seed: int = 0,
    generator: GeneratorConfig | None = None,
    least_sure_of: Path | None = None,
) -> int:
    """Write an annotation folder for `size` rows drawn from `rows` (all when None): one
    question item and one answer item per row, from its first turn. `images[i]` holds row
    i's image bytes. The rows are a seeded random draw, or those the reward model at
    `least_sure_of` orders least surely; `generator` adds LLM-written variants to the
    seed's corruptions. Returns the number of items."""
    if not 2 <= candidates <= MAX_CANDIDATES:
        raise Align2Error(f"an item holds 2 to {MAX_CANDIDATES} candidates, got {candidates}")
    out = Path(out)
    if (out / TASKS_FILE).exists():
        raise Align2Error(f"{out} already holds annotation tasks; prepare into a new folder")
    rng = random.Random(seed)
    firsts = [_first_turn(row["conversations"]) for row in rows]
    if least_sure_of is not None and size is not None:
        chosen = least_sure_rows(
            firsts, images, least_sure_of, size, candidates=candidates, seed=seed
        )
    elif size is not None:
        chosen = sorted(rng.sample(range(len(rows)), size))
    else:
        chosen = range(len(rows))
    variants = generated_variants([firsts[i] for i in chosen], generator) if generator else None
    (out / "images").mkdir(parents=True, exist_ok=True)
    tasks, origins = [], []
    for n, index in enumerate(chosen):
        row = rows[index]
        question, answer = firsts[index]
        image = f"{n:05d}.png"
        (out / "images" / image).write_bytes(images[index])
        for kind, prompt, original in ((QUESTION, "", question), (ANSWER, question, answer)):
            extra = variants[n][kind] if variants else []
            texts, names = _candidates(original, kind, candidates, rng, extra)
            if len(texts) < 2:  # a one-word answer has no corruption: nothing to compare
                continue
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


def _candidates(original: str, kind: str, n: int, rng: random.Random, extra=()):
    """The original, generated variants (`extra`: (text, origin); at most half the other
    places) and distinct corruptions of it up to n (the seed's: shuffled words, a cropped
    span, for questions a duplicated line)."""
    methods = sorted(m for m in CORRUPTIONS if kind == QUESTION or m != "duplicate")
    kept = list(extra)[: max(1, (n - 1) // 2)]
    texts, names = [original, *(t for t, _ in kept)], ["original", *(o for _, o in kept)]
    for attempt in range(8 * n):
        if len(texts) == n:
            break
        method = methods[attempt % len(methods)]
        text = CORRUPTIONS[method](original, rng)
        if text and text not in texts:
            texts.append(text)
            names.append(method)
    return texts, names


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
