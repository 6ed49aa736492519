"""A training-free styler: one of mmSSR's 9 interaction styles per sample, from text alone.

Rules look at the first question-answer turn (the one that carries the image); the first
rule that fires wins, most specific first.
"""

from __future__ import annotations

import re

from align2.data.schema import IMAGE_TOKEN

STYLES = (
    "multi-choice",
    "coordinate",
    "yes/no",
    "word/short-phrase",
    "short description",
    "detailed description",
    "comparison",
    "chain-of-thought",
    "specified style",
)

_CHOICES = re.compile(r"(^|\n|\s)(\(?[A-D][\).:]\s)|\boptions?:", re.IGNORECASE)
_BOX = re.compile(r"\[\s*-?\d*\.?\d+\s*(,\s*-?\d*\.?\d+\s*){3}\]")
_SPECIFIED = re.compile(
    r"\b(answer|respond|reply) (with|in|using)\b|\bin (one|a single) (word|sentence)\b"
    r"|\b(json|bullet points?|format)\b",
    re.IGNORECASE,
)
_COMPARE = re.compile(
    r"\b(compare|comparison|difference|differences|similar|versus|vs\.?)\b", re.IGNORECASE
)
_REASONING = re.compile(
    r"\b(step by step|first,|therefore|because|so there|thus|since)\b", re.IGNORECASE
)
_YES_NO = re.compile(r"^\s*(yes|no)\b", re.IGNORECASE)
DETAILED_WORDS = 40  # a description longer than this is "detailed"
SHORT_WORDS = 3


def style_of(conversations: list[dict]) -> str:
    """The style of a LLaVA conversation (judged on its first question and answer)."""
    question = conversations[0]["value"].replace(IMAGE_TOKEN, "").strip()
    answer = conversations[1]["value"].strip() if len(conversations) > 1 else ""
    words = len(answer.split())
    if _CHOICES.search(question):
        return "multi-choice"
    if _BOX.search(answer):
        return "coordinate"
    if _SPECIFIED.search(question):
        return "specified style"
    if _COMPARE.search(question):
        return "comparison"
    if _YES_NO.match(answer) and words <= 25 and not _REASONING.search(answer):
        return "yes/no"
    if _REASONING.search(answer) and words > SHORT_WORDS:
        return "chain-of-thought"
    if words <= SHORT_WORDS:
        return "word/short-phrase"
    return "detailed description" if words > DETAILED_WORDS else "short description"


def label_styles(batch: dict) -> dict:
    """`datasets.map(batched=True)` function: adds a `style` column."""
    return {"style": [style_of(turns) for turns in batch["conversations"]]}
