"""Selection policies over a scored dataset. Each is a small frozen config and a pure function
that returns one reason per row: None for kept, else why the row was dropped.

Ties are broken by id, so the same scores always keep the same rows.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

BELOW_QUESTION_CUT = "below_question_cut"
BELOW_ANSWER_CUT = "below_answer_cut"
BELOW_THRESHOLD = "below_threshold"
OVER_BUDGET = "over_budget"


def _count(ratio: float, n: int) -> int:
    """round(ratio * n), halves up (Python's round() is banker's rounding)."""
    return int(math.floor(ratio * n + 0.5))


def rank(scores: Sequence[float], ids: Sequence[str], index: Sequence[int]) -> list[int]:
    """`index` ordered best first: score descending, then id ascending."""
    return sorted(index, key=lambda i: (-scores[i], ids[i]))


def _budget(n: int, budget: int | None, ratio: float | None) -> int:
    if (budget is None) == (ratio is None):
        raise ValueError("give exactly one of `budget` (a row count) or `ratio` (a share)")
    return min(n, budget if budget is not None else _count(ratio, n))


@dataclass(frozen=True)
class Align2Selection:
    """The seed's two stages: top question_ratio by question score per type, then top
    answer_ratio (of those) by answer score per type. 0.3 x 0.3 = 9% (158k -> 14.2k)."""

    question_ratio: float = 0.3
    answer_ratio: float = 0.3


def select_align2(ids, types, question_scores, answer_scores, config: Align2Selection):
    reasons: list[str | None] = [None] * len(ids)
    by_type: dict[str, list[int]] = defaultdict(list)
    for i, kind in enumerate(types):
        by_type[kind].append(i)
    for members in by_type.values():
        ranked = rank(question_scores, ids, members)
        cut = _count(config.question_ratio, len(ranked))
        for i in ranked[cut:]:
            reasons[i] = BELOW_QUESTION_CUT
        survivors = rank(answer_scores, ids, ranked[:cut])
        for i in survivors[_count(config.answer_ratio, len(survivors)) :]:
            reasons[i] = BELOW_ANSWER_CUT
    return reasons


@dataclass(frozen=True)
class ThresholdSelection:
    min_score: float


def select_threshold(scores, config: ThresholdSelection):
    return [None if s >= config.min_score else BELOW_THRESHOLD for s in scores]


@dataclass(frozen=True)
class TopKSelection:
    k: int


def select_top_k(ids, scores, config: TopKSelection):
    kept = set(rank(scores, ids, range(len(ids)))[: config.k])
    return [None if i in kept else OVER_BUDGET for i in range(len(ids))]


@dataclass(frozen=True)
class RandomSelection:
    """The baseline every report compares against, at the same budget."""

    budget: int | None = None
    ratio: float | None = None
    seed: int = 0


def select_random(ids, config: RandomSelection):
    n = _budget(len(ids), config.budget, config.ratio)
    order = sorted(range(len(ids)), key=lambda i: ids[i])  # independent of input order
    kept = set(random.Random(config.seed).sample(order, n))
    return [None if i in kept else OVER_BUDGET for i in range(len(ids))]


@dataclass(frozen=True)
class BudgetSelection:
    """mmSSR's sampler: capabilities round-robin, each gets remaining/num_caps; candidates
    above `threshold` best first, bucketed by style; bins visited smallest first with quota
    budget/num_bins, the shortfall carried to the next bin; chosen items leave the pool;
    repeat until the budget is filled or nothing is left."""

    budget: int | None = None
    ratio: float | None = None
    threshold: float = -math.inf


def select_budget(ids, scores, styles, config: BudgetSelection, capabilities=None):
    n = len(ids)
    budget = _budget(n, config.budget, config.ratio)
    capabilities = capabilities if capabilities is not None else ["all"] * n
    pools: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        if scores[i] > config.threshold:
            pools[capabilities[i]].append(i)
    chosen: list[int] = []
    while len(chosen) < budget and any(pools.values()):
        live = sorted(c for c, pool in pools.items() if pool)
        share = max(1, (budget - len(chosen)) // len(live))  # fixed for the whole round
        for cap in live:
            if len(chosen) >= budget:
                break
            picked = _fill_by_style(
                pools[cap], ids, scores, styles, min(share, budget - len(chosen))
            )
            chosen.extend(picked)
            taken = set(picked)
            pools[cap] = [i for i in pools[cap] if i not in taken]
    kept = set(chosen[:budget])
    return [
        None if i in kept else (OVER_BUDGET if scores[i] > config.threshold else BELOW_THRESHOLD)
        for i in range(n)
    ]


def _fill_by_style(pool, ids, scores, styles, share: int) -> list[int]:
    bins: dict[str, list[int]] = defaultdict(list)
    for i in rank(scores, ids, pool):
        bins[styles[i]].append(i)
    picked: list[int] = []
    order = sorted(bins, key=lambda s: (len(bins[s]), s))  # smallest bin first
    for bins_left, style in zip(range(len(order), 0, -1), order, strict=True):
        # An equal share of what is left: a small bin's shortfall carries to the next ones.
        quota = math.ceil((share - len(picked)) / bins_left)
        picked.extend(bins[style][:quota])
    return picked
