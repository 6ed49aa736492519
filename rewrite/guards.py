"""Guards: objective checks a rewrite must pass on top of the LLM's own review. A rewrite
that fails one is discarded and the original kept; the check's name says why.

Facts are compared as sets of normalised tokens: every number, colour, shape and named
entity of the original must still be there, and a yes/no answer must keep its polarity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from align2.builders.schema import IMAGE_TOKEN

# fmt: off
COLOURS = frozenset((
    "red", "green", "blue", "black", "white", "gray", "grey", "yellow", "teal", "brown",
    "orange", "purple", "pink", "violet", "cyan", "magenta", "gold", "silver", "beige", "maroon",
    "navy",
))
# fmt: on
# fmt: off
SHAPES = frozenset((
    "circle", "circles", "rectangle", "rectangles", "square", "squares", "triangle", "triangles",
    "oval", "ovals", "star", "stars", "hexagon", "hexagons", "diamond", "diamonds",
))
# fmt: on
NUMBER_WORDS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
}  # fmt: skip
META_TEXT = re.compile(
    r"\bas an ai\b|\blanguage model\b|\bhere is (the|a|my) (rewritten|revised|rephrased)\b"
    r"|\b(rewritten|revised|rephrased) (version|text|answer|question)\b|\bi (cannot|can't) \b"
    r"|\bi'm sorry\b|\bsure[,!]? here\b"
    r"|\bthe answer (to (this|the) question\b.*?)?is\b",  # talks about the answer, not the image
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_YES_NO = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
_SENTENCE_START = re.compile(r"(^|[.!?:]\s+|\n)([A-Z][a-z]+)")
_NEGATION = re.compile(r"\b(not|no|none|never|nothing|without|cannot)\b|n't\b", re.IGNORECASE)

# Check names, as recorded per turn.
ACCEPTED = "accepted"
GUARDS = (
    "image_token",
    "question_form",
    "negation",
    "numbers",
    "colours",
    "shapes",
    "entities",
    "polarity",
    "length",
    "meta_text",
    "reward_drop",
)


@dataclass(frozen=True)
class GuardConfig:
    min_length_ratio: float = 0.5  # rewrite words / original words
    max_length_ratio: float = 2.0
    length_slack_words: int = 6  # one-word answers may become a short sentence
    max_reward_drop: float = 0.5  # answer-reward fall allowed (when a reward model is given)


def numbers(text: str) -> set[str]:
    words = {NUMBER_WORDS[w] for w in _words(text) if w in NUMBER_WORDS}
    return words | {n.replace(",", "") for n in _NUMBER.findall(text)}


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and word[:-1] in SHAPES else word


def colours(text: str) -> set[str]:
    return {("gray" if w == "grey" else w) for w in _words(text) if w in COLOURS}


def shapes(text: str) -> set[str]:
    return {_singular(w) for w in _words(text) if w in SHAPES}


def entities(text: str) -> set[str]:
    """Capitalised words that do not start a sentence: names of people, places, brands."""
    starts = {m.group(2) for m in _SENTENCE_START.finditer(text)}
    found = {w for w in _WORD.findall(text) if w[0].isupper() and len(w) > 1 and w != "I"}
    return {w for w in found - starts if w.lower() not in COLOURS | SHAPES}


def negated(text: str) -> bool:
    return bool(_NEGATION.search(text))


def polarity(text: str) -> str | None:
    match = _YES_NO.match(text)
    return match.group(1).lower() if match else None


def check_rewrite(
    original: str,
    rewrite: str,
    *,
    is_answer: bool,
    config: GuardConfig,
    reward_drop: float | None = None,
) -> str:
    """`accepted`, or the name of the first guard the rewrite fails."""
    if original.count(IMAGE_TOKEN) != rewrite.count(IMAGE_TOKEN):
        return "image_token"
    if not is_answer and original.rstrip().endswith("?") and not rewrite.rstrip().endswith("?"):
        return "question_form"
    if not is_answer and negated(original) != negated(rewrite):
        return "negation"  # "Is there not a ...?" must stay negated: it flips the answer
    if not numbers(original) <= numbers(rewrite):
        return "numbers"
    if not colours(original) <= colours(rewrite):
        return "colours"
    if not shapes(original) <= shapes(rewrite):
        return "shapes"
    if not entities(original) <= set(_WORD.findall(rewrite)):
        return "entities"
    if is_answer and polarity(original) is not None and polarity(original) != polarity(rewrite):
        return "polarity"
    words, limit = len(rewrite.split()), len(original.split())
    low = config.min_length_ratio * limit - config.length_slack_words
    high = config.max_length_ratio * limit + config.length_slack_words
    if not low <= words <= high:
        return "length"
    if META_TEXT.search(rewrite) and not META_TEXT.search(original):
        return "meta_text"
    if reward_drop is not None and reward_drop > config.max_reward_drop:
        return "reward_drop"
    return ACCEPTED
