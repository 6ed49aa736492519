"""Human-preference annotations -> one canonical preference dataset.

Formats (detected per record from its keys):
- seed question file: {"id", "image", "questions": [[q0, ...], ...], "score": [...]}
- seed answer file: a LLaVA record whose gpt turn's `value` is a list of candidate answers and
  whose `score` (one per candidate) sits in that turn (or at the top level); every such gpt
  turn is one item, its question the human turn before it
- generic: {"id", "image", "kind", "prompt", "candidates": [...], "scores": [...]}
- explicit pairs: {"id", "image", "kind", "prompt", "chosen", "rejected", ["margin"], ["subset"]}
An optional "labels" list (one per candidate) names each candidate for per-subset evaluation.

Pairs are every ordered pair of candidates of one item with score_i > score_j (ties skipped),
margin = the score gap, plus the seed's corruption augmentation.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import datasets
from datasets import Features, Image, Value

from align2.data.sources.llava_json import read_json_records
from align2.data.validate import (
    Problem,
    Quarantine,
    RawRecord,
    Reason,
    ValidationConfig,
    check_image,
)
from align2.errors import SourceError
from align2.reward.templates import ANSWER, KINDS, QUESTION, strip_image_token

PREFERENCE_FEATURES = Features(
    {
        "id": Value("string"),
        "image": Image(),
        "kind": Value("string"),  # question | answer
        "prompt": Value("string"),  # the question (answer kind); "" for the question kind
        "chosen": Value("string"),  # an answer, or the questions joined by "\n"
        "rejected": Value("string"),
        "margin": Value("float32"),
        "subset": Value("string"),  # what distinguishes the pair, for per-subset evaluation
    }
)


@dataclass(frozen=True)
class PairingConfig:
    augment_p: float = 0.25  # per candidate: add (candidate > corrupted candidate)
    seed: int = 0


@dataclass(frozen=True)
class Item:
    """One annotated item: N candidates for the same image and prompt, with scores."""

    id: str
    image: Any
    kind: str
    prompt: str
    candidates: list[str]
    scores: list[float]
    labels: list[str] | None = None


class _Malformed(Exception):
    pass


def _require(record: dict, key: str, types: type | tuple[type, ...]) -> Any:
    if key not in record:
        raise _Malformed(f"missing `{key}`")
    if not isinstance(record[key], types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise _Malformed(f"`{key}` must be a {names}, got {type(record[key]).__name__}")
    return record[key]


def _scores(record: dict, key: str) -> list[float]:
    scores = _require(record, key, list)
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores):
        raise _Malformed(f"`{key}` must be a list of numbers")
    return [float(s) for s in scores]


def parse_items(record: Any) -> list[Item | dict]:
    """The record's items (a seed answer record may hold several), or an explicit pair as a
    dict. Raises `_Malformed` with what is wrong."""
    if not isinstance(record, dict):
        raise _Malformed(f"expected an object, got {type(record).__name__}")
    row_id = str(_require(record, "id", (str, int)))
    image = record.get("image")
    if image is None:
        raise _Malformed("missing `image`")
    labels = record.get("labels")
    if "questions" in record:  # seed question file
        questions = _require(record, "questions", list)
        if not all(isinstance(c, list) and all(isinstance(q, str) for q in c) for c in questions):
            raise _Malformed("`questions` must be a list of lists of strings")
        candidates = ["\n".join(strip_image_token(q) for q in c) for c in questions]
        return [Item(row_id, image, QUESTION, "", candidates, _scores(record, "score"), labels)]
    if "conversations" in record:  # seed answer file
        return _answer_items(record, row_id, image, labels)
    kind = record.get("kind", ANSWER)
    if kind not in KINDS:
        raise _Malformed(f"`kind` is {kind!r}, allowed: {', '.join(KINDS)}")
    if "chosen" in record:  # explicit pair
        margin = record.get("margin", 0.0)
        pair = {
            "id": row_id,
            "image": image,
            "kind": kind,
            "prompt": strip_image_token(str(record.get("prompt", ""))),
            "chosen": str(_require(record, "chosen", str)),
            "rejected": str(_require(record, "rejected", str)),
            "margin": float(margin),
            "subset": str(record.get("subset", "pairs")),
        }
        return [pair]
    candidates = [str(c) for c in _require(record, "candidates", list)]
    prompt = strip_image_token(str(record.get("prompt", "")))
    return [Item(row_id, image, kind, prompt, candidates, _scores(record, "scores"), labels)]


def _answer_items(record: dict, row_id: str, image: Any, labels) -> list[Item]:
    """Each gpt turn holding a list of candidates is an item; the seed's released files put
    its `score` inside the turn, earlier exports at the top level (one candidate turn only)."""
    turns = _require(record, "conversations", list)
    if not all(isinstance(t, dict) for t in turns):
        raise _Malformed("`conversations` must be a list of {from, value} turns")
    annotated = [i for i, t in enumerate(turns) if isinstance(t.get("value"), list)]
    if not annotated:
        raise _Malformed("no gpt turn whose `value` is a list of candidate answers")
    items = []
    for number, i in enumerate(annotated):
        turn = turns[i]
        if i == 0 or turns[i - 1].get("from") != "human":
            raise _Malformed(f"turn {i} holds candidates but no human turn comes before it")
        if "score" in turn:
            scores = _scores(turn, "score")
        elif len(annotated) == 1:
            scores = _scores(record, "score")
        else:
            raise _Malformed(f"turn {i} holds candidates but no `score`")
        question = strip_image_token(str(turns[i - 1].get("value", "")))
        answers = [str(a) for a in turn["value"]]
        item_id = row_id if len(annotated) == 1 else f"{row_id}-{number}"
        items.append(Item(item_id, image, ANSWER, question, answers, scores, labels))
    return items


# --- corruption augmentation (the seed's: word shuffle, random word crop, duplicated questions)


def _shuffle(text: str, rng: random.Random) -> str | None:
    words = text.split()
    if len(set(words)) < 2:
        return None
    shuffled = list(words)
    while shuffled == words:
        rng.shuffle(shuffled)
    return " ".join(shuffled)


def _crop(text: str, rng: random.Random) -> str | None:
    words = text.split()
    if len(words) < 3:
        return None
    keep = rng.randint(1, len(words) - 2)
    start = rng.randint(0, len(words) - keep)
    return " ".join(words[start : start + keep])


def _duplicate(text: str, rng: random.Random) -> str | None:
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    return "\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :])


CORRUPTIONS = {"shuffle": _shuffle, "crop": _crop, "duplicate": _duplicate}  # duplicate: questions


def corrupt(text: str, kind: str, rng: random.Random) -> tuple[str, str] | None:
    methods = {k: f for k, f in CORRUPTIONS.items() if kind == QUESTION or k != "duplicate"}
    name = rng.choice(sorted(methods))
    corrupted = methods[name](text, rng)
    return (corrupted, name) if corrupted and corrupted != text else None


def _subset(item: Item, i: int, j: int) -> str:
    if not item.labels:
        return "human"
    if item.labels[i] == "original":
        return item.labels[j]
    return f"{item.labels[i]}>{item.labels[j]}"


def item_pairs(item: Item, config: PairingConfig, rng: random.Random) -> Iterator[dict]:
    base = {"id": item.id, "image": item.image, "kind": item.kind, "prompt": item.prompt}
    n = len(item.candidates)
    for i in range(n):
        for j in range(n):
            if item.scores[i] > item.scores[j]:
                yield {
                    **base,
                    "chosen": item.candidates[i],
                    "rejected": item.candidates[j],
                    "margin": item.scores[i] - item.scores[j],
                    "subset": _subset(item, i, j),
                }
    for i in range(n):
        if rng.random() < config.augment_p:
            corrupted = corrupt(item.candidates[i], item.kind, rng)
            if corrupted:
                yield {
                    **base,
                    "chosen": item.candidates[i],
                    "rejected": corrupted[0],
                    "margin": item.scores[i],
                    "subset": f"augment:{corrupted[1]}",
                }


def _records(annotations: Any) -> Iterator[RawRecord]:
    if isinstance(annotations, (datasets.Dataset, list)):
        for index, row in enumerate(annotations):
            yield RawRecord(index, row)
        return
    path = Path(annotations)
    if path.suffix in (".json", ".jsonl"):
        yield from read_json_records(path, what="annotation")
        return
    saved = (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()
    ds = (  # a save_to_disk folder; else a Hub id or a dataset folder (an annotation release)
        datasets.load_from_disk(str(path))
        if saved
        else datasets.load_dataset(str(annotations), split="train")
    )
    for index, row in enumerate(ds):
        yield RawRecord(index, row)


def preference_pairs(
    annotations: str | Path | datasets.Dataset | list,
    *,
    image_folder: str | Path | None = None,
    config: PairingConfig = PairingConfig(),
    quarantine: Quarantine | None = None,
    kind: str | None = None,
) -> datasets.Dataset:
    """Load any supported annotation format and expand it into preference pairs.

    A malformed record raises `SourceError` naming it; an item whose candidates and scores
    differ in length, or whose image is unusable, is quarantined with a reason.
    """
    quarantine = quarantine if quarantine is not None else Quarantine()
    image_config = ValidationConfig(
        image_folder=None if image_folder is None else Path(image_folder)
    )
    rng = random.Random(config.seed)
    rows: list[dict] = []
    for raw in _records(annotations):
        if raw.problem:
            raise SourceError(f"{annotations}: record {raw.index}: {raw.problem.detail}")
        try:
            parsed = parse_items(raw.record)
        except _Malformed as err:
            rid = raw.record.get("id") if isinstance(raw.record, dict) else None
            raise SourceError(
                f"{annotations}: record {raw.index} (id {rid!r}) is malformed: {err}. "
                "See the annotation formats in README.md."
            ) from None
        problem = next(filter(None, (_item_problem(p, kind) for p in parsed)), None)
        image, image_problem = check_image(raw.record["image"], image_config)
        problem = problem or image_problem
        if problem:
            quarantine.add(raw.index, raw.record, problem, source=str(annotations))
            continue
        quarantine.ledger.keep()
        for item in parsed:
            if isinstance(item, dict):
                rows.append({**item, "image": image})
            else:
                rows.extend(item_pairs(replace(item, image=image), config, rng))
    if not rows:
        return datasets.Dataset.from_dict(
            {k: [] for k in PREFERENCE_FEATURES}, features=PREFERENCE_FEATURES
        )
    return datasets.Dataset.from_list(rows, features=PREFERENCE_FEATURES)


def _item_problem(parsed: Item | dict, kind: str | None) -> Problem | None:
    item_kind = parsed["kind"] if isinstance(parsed, dict) else parsed.kind
    if kind and item_kind != kind:
        return Problem(Reason.BAD_FIELD_TYPE, f"a {item_kind} annotation where {kind} was asked")
    if isinstance(parsed, Item):
        if len(parsed.candidates) != len(parsed.scores):
            return Problem(
                Reason.CANDIDATE_SCORE_MISMATCH,
                f"{len(parsed.candidates)} candidates but {len(parsed.scores)} scores",
            )
        if parsed.labels is not None and len(parsed.labels) != len(parsed.candidates):
            return Problem(
                Reason.CANDIDATE_SCORE_MISMATCH,
                f"{len(parsed.labels)} labels for {len(parsed.candidates)} candidates",
            )
    return None
