"""Guards: objective checks a rewrite must pass on top of the LLM's own review. A rewrite
that fails one is discarded and the original kept; the check's name says why.

Facts are compared as sets of normalised tokens: every number, colour, shape and named
entity of the original must still be there and no new one may appear; a yes/no answer keeps
its yes or no; and every claim keeps its stance (`claims.changed_claim`: a negation added or
removed anywhere is refused). Where the build has an answer reward model, a rewrite it scores
much lower than the original is refused too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from align2.data.schema import IMAGE_TOKEN
from align2.rewrite.claims import (
    changed_claim,
    colours,
    entities,
    facts,
    negated,
    numbers,
    polarity,
    shapes,
    words,
)

META_TEXT = re.compile(
    r"\bas an ai\b|\blanguage model\b|\bhere is (the|a|my) (rewritten|revised|rephrased)\b"
    r"|\b(rewritten|revised|rephrased) (version|text|answer|question)\b|\bi (cannot|can't) \b"
    r"|\bi'm sorry\b|\bsure[,!]? here\b"
    r"|\bthe answer (to (this|the) question\b.*?)?is\b",  # talks about the answer, not the image
    re.IGNORECASE,
)
ACCEPTED = "accepted"  # the decision of a rewrite that passed every guard
REWARD_DROP = "reward_drop"  # the answer reward model scored the rewrite too far below


@dataclass(frozen=True)
class GuardConfig:
    min_length_ratio: float = 0.5  # rewrite words / original words
    max_length_ratio: float = 2.0
    length_slack_words: int = 6  # one-word answers may become a short sentence
    max_reward_drop: float = 0.5  # answer-reward fall allowed (when a reward model is given)


def degenerate(original: str, rewrite: str, question: str) -> bool:
    """A stutter ("No, no.", "the the"), or an answer that repeats or asks the question."""
    said, before = words(rewrite), words(original)
    stutters = any(a == b for a, b in zip(said, said[1:], strict=False))
    if stutters and not any(a == b for a, b in zip(before, before[1:], strict=False)):
        return True
    return bool(question) and (
        rewrite.rstrip().endswith("?") or sorted(said) == sorted(words(question))
    )


def check_rewrite(
    original: str,
    rewrite: str,
    *,
    is_answer: bool,
    config: GuardConfig,
    question: str = "",
    reward_drop: float | None = None,
) -> str:
    """`accepted`, or the name of the first guard the rewrite fails. `question` is the turn an
    answer replies to: it gives a bare "yes" or "no" its content."""
    if original.count(IMAGE_TOKEN) != rewrite.count(IMAGE_TOKEN):
        return "image_token"
    if not is_answer and original.rstrip().endswith("?") and not rewrite.rstrip().endswith("?"):
        return "question_form"
    if not is_answer and negated(original) != negated(rewrite):
        return "negation"  # "Is there not a ...?" must stay negated: it flips the answer
    if META_TEXT.search(rewrite) and not META_TEXT.search(original):
        return "meta_text"
    for name, read in (("numbers", numbers), ("colours", colours), ("shapes", shapes)):
        if not read(original) <= read(rewrite):
            return name
    if not {e.lower() for e in entities(original)} <= set(words(rewrite)):
        return "entities"
    if not facts(rewrite) <= facts(original) | facts(question):
        return "added_facts"  # a number, colour, shape or name the original never stated
    if is_answer and polarity(original) != polarity(rewrite):
        return "polarity"
    if changed_claim(original, rewrite, question if is_answer else "") is not None:
        return "claims"  # something asserted is now denied, or the other way round
    if is_answer and degenerate(original, rewrite, question):
        return "degenerate"
    words_out, words_in = len(rewrite.split()), len(original.split())
    low = config.min_length_ratio * words_in - config.length_slack_words
    high = config.max_length_ratio * words_in + config.length_slack_words
    if not low <= words_out <= high:
        return "length"
    if reward_drop is not None and reward_drop > config.max_reward_drop:
        return REWARD_DROP
    return ACCEPTED
