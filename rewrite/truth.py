"""Rewrites checked against ground truth, where a pool has it (the demo pool's per-image
colour and shape): every claim of the whole answer is read with the guards' own reader
(`claims.read_claims`) and judged against the image's facts.

A claim that names a colour or shape is true when what it asserts is in the image (or what
it denies is not); an answer is true when all its judged claims are, false when one is not,
and unjudged when it names no colour or shape at all (a refusal, markup, an off-topic
sentence): those are counted, never silently passed.
"""

from __future__ import annotations

import json
from pathlib import Path

from align2.data.schema import GPT, HUMAN
from align2.rewrite.claims import COLOURS, SHAPES, polarity, read_claims, term

VISUAL = frozenset(term(w) for w in COLOURS | SHAPES)


def read_image_facts(path: str | Path) -> dict[str, set[str]]:
    """id -> the image's colour and shape, from the demo pool's truth file."""
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {
        str(r["id"]): {term(v) for v in (r["facts"]["color"], r["facts"]["shape"]) if v}
        for r in rows
    }


def judge(answer: str, question: str, image: set[str]) -> bool | None:
    """Is everything `answer` claims about colours and shapes true of `image`? None when it
    claims nothing about them."""
    verdicts = []
    for claim in read_claims(answer, question):
        named = claim.terms & VISUAL
        if named:
            verdicts.append((named <= image) != claim.negated)
    return all(verdicts) if verdicts else None


def _answer_turns(row: dict):
    """(question, original answer, final answer, decision) per answer turn of a row."""
    question = ""
    turns = zip(
        row["original_conversations"], row["conversations"], row["rewrite_decisions"], strict=True
    )
    for old, new, decision in turns:
        if old["from"] == HUMAN:
            question = old["value"].replace("<image>", "").strip()
        elif old["from"] == GPT:
            yield question, old["value"], new["value"], decision


def rewrite_truth_report(rows: list[dict], image_facts: dict[str, set[str]]) -> dict:
    """Accepted answer rewrites judged against the images: how many are true, false or could
    not be judged; `flipped` counts those whose original was true and the rewrite is not (a
    rewrite cannot be blamed for a defect it faithfully kept: `original_false` counts those
    apart). `yes_no` counts the accepted rewrites of yes/no answers.

    `rows` carry id, conversations, original_conversations and rewrite_decisions."""
    counts = dict.fromkeys(
        ("accepted_answers", "yes_no", "true", "false", "unjudged", "original_false", "flipped"),
        0,
    )
    for row in rows:
        image = image_facts[row["id"]]
        for question, old, new, decision in _answer_turns(row):
            if decision != "accepted":
                continue
            counts["accepted_answers"] += 1
            counts["yes_no"] += polarity(old) is not None
            before, after = judge(old, question, image), judge(new, question, image)
            counts["unjudged" if after is None else "true" if after else "false"] += 1
            counts["original_false"] += before is False
            counts["flipped"] += before is not False and after is False
    judged = counts["true"] + counts["false"]
    return {**counts, "true_share": round(counts["true"] / judged, 4) if judged else None}
