"""Selection policies over a scored dataset. Each is a small frozen config and a pure function
over columns that returns one reason code per row: KEPT (0), else why the row was dropped
(`REASONS[code]`). Codes, not strings, so 10M decisions are 10 MB, not 10M objects.

Ties are broken by id, so the same scores always keep the same rows. The functions are
vectorised: numbers in numpy, strings (ids, types, styles) in Arrow, the scored table's own
format, whose C++ kernels hash and sort 10M strings in well under a second where numpy's
fixed-width strings took seconds. Selecting from 10M rows takes seconds, not minutes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from align2.errors import Align2Error

REASONS = (None, "below_question_cut", "below_answer_cut", "below_threshold", "over_budget")
KEPT, BELOW_QUESTION_CUT, BELOW_ANSWER_CUT, BELOW_THRESHOLD, OVER_BUDGET = range(len(REASONS))
POLICIES = ("align2", "budget", "threshold", "top-k", "random")


def _count(ratio: float, n: int) -> int:
    """round(ratio * n), halves up (Python's round() is banker's rounding)."""
    return int(math.floor(ratio * n + 0.5))


def _budget(n: int, budget: int | None, ratio: float | None) -> int:
    return min(n, budget if budget is not None else _count(ratio, n))


def _share(name: str, value: float) -> None:
    if not 0 < value <= 1:  # NaN fails this too
        raise ValueError(f"`{name}` is a share of the rows: 0 < {name} <= 1, got {value}")


def _check_budget(budget: int | None, ratio: float | None) -> None:
    if (budget is None) == (ratio is None):
        raise ValueError("give exactly one of `budget` (a row count) or `ratio` (a share)")
    if budget is not None and budget < 0:
        raise ValueError(f"`budget` is a row count: >= 0, got {budget}")
    if ratio is not None:
        _share("ratio", ratio)


def _array(values) -> np.ndarray:
    return values if isinstance(values, np.ndarray) else np.asarray(values)


def _strings(values) -> pa.Array:
    """Labels or ids as one Arrow array (a scored table's column is one already)."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    return pa.array(np.asarray(values).astype(object))  # fixed-width numpy strings too


def best(scores: np.ndarray, ids, index: np.ndarray, k: int) -> np.ndarray:
    """The `k` best rows of `index` (score descending, then id ascending) as a set, in no
    particular order: a partition, O(n), where ranking them all is a sort."""
    index = np.asarray(index)
    if k >= len(index):
        return index
    if k <= 0:
        return index[:0]
    values = np.nan_to_num(scores[index], nan=-np.inf)  # NaN ranks last, as in `rank`
    cut = np.partition(values, len(values) - k)[len(values) - k]  # the k-th largest
    above, at = index[values > cut], index[values == cut]
    # Rows tied at the cut: the smallest ids fill what is left.
    at = at[pc.sort_indices(_strings(ids).take(at)).to_numpy()[: k - len(above)]]
    return np.concatenate([above, at])


def rank(
    scores: np.ndarray, ids, index: np.ndarray | None = None, limit: int | None = None
) -> np.ndarray:
    """`index` (default: all rows) ordered best first: score descending, then id ascending;
    only the best `limit` of them when it is given."""
    index = np.arange(len(scores)) if index is None else np.asarray(index)
    if limit is not None:
        index = best(scores, ids, index, limit)
    order = index[np.argsort(-scores[index])]
    ranked = scores[order]
    same_as_next = ranked[1:] == ranked[:-1]
    if same_as_next.any():
        # Only rows whose score is shared need the id comparison (float32 scores of 10M rows
        # share values in ~13% of rows). Sorted by score, then id: groups stay where they are.
        rows = np.flatnonzero(np.append(same_as_next, False) | np.insert(same_as_next, 0, False))
        tied = pa.table({"score": ranked[rows], "id": _strings(ids).take(order[rows])})
        within = pc.sort_indices(tied, sort_keys=[("score", "descending"), ("id", "ascending")])
        order[rows] = order[rows][within.to_numpy()]
    return order


def _reasons(n: int, kept: np.ndarray, dropped_reason: int) -> np.ndarray:
    reasons = np.full(n, dropped_reason, dtype=np.int8)
    reasons[kept] = KEPT
    return reasons


def reason_names(codes: np.ndarray) -> list[str | None]:
    """Codes -> reason strings (None for kept), as the `reason` column shows them."""
    return np.asarray(REASONS, dtype=object)[codes].tolist()


def _codes(labels) -> np.ndarray:
    """Labels -> integer codes in sorted label order."""
    # Hash-based: only the distinct labels are sorted, not every row's string.
    encoded = pc.dictionary_encode(_strings(labels))
    sorted_codes = np.argsort(np.argsort(encoded.dictionary.to_numpy(zero_copy_only=False)))
    return sorted_codes[encoded.indices.to_numpy()]


def _groups(codes: np.ndarray) -> list[np.ndarray]:
    """Row indices (ascending) per distinct integer code, codes ascending."""
    if not len(codes):
        return []
    counts = np.bincount(codes)
    # numpy's stable sort of 8- or 16-bit integers is a radix sort: 20x faster than int64's.
    order = np.argsort(codes.astype(np.min_scalar_type(len(counts) - 1)), kind="stable")
    return [group for group in np.split(order, np.cumsum(counts)[:-1]) if len(group)]


@dataclass(frozen=True)
class Align2Selection:
    """The seed's two stages: top question_ratio by question score per type, then top
    answer_ratio (of those) by answer score per type. 0.3 x 0.3 = 9% (158k -> 14.2k)."""

    question_ratio: float = 0.3
    answer_ratio: float = 0.3

    def __post_init__(self):
        _share("question_ratio", self.question_ratio)
        _share("answer_ratio", self.answer_ratio)


def select_align2(ids, types, question_scores, answer_scores, config: Align2Selection):
    ids, q, a = _strings(ids), _array(question_scores), _array(answer_scores)
    reasons = np.full(len(ids), BELOW_QUESTION_CUT, dtype=np.int8)
    for members in _groups(_codes(types)):
        survivors = best(q, ids, members, _count(config.question_ratio, len(members)))
        reasons[survivors] = BELOW_ANSWER_CUT
        kept = best(a, ids, survivors, _count(config.answer_ratio, len(survivors)))
        reasons[kept] = KEPT
    return reasons


@dataclass(frozen=True)
class ThresholdSelection:
    min_score: float
    score: str = "answer_score"  # the score column compared

    def __post_init__(self):
        if not math.isfinite(self.min_score):
            raise ValueError(f"`min_score` must be a finite number, got {self.min_score}")


def select_threshold(scores, config: ThresholdSelection):
    scores = _array(scores)
    return _reasons(len(scores), scores >= config.min_score, BELOW_THRESHOLD)


@dataclass(frozen=True)
class TopKSelection:
    k: int
    score: str = "answer_score"

    def __post_init__(self):
        if self.k < 0:
            raise ValueError(f"`k` is a row count: >= 0, got {self.k}")


def select_top_k(ids, scores, config: TopKSelection):
    ids, scores = _strings(ids), _array(scores)
    return _reasons(len(ids), best(scores, ids, np.arange(len(ids)), config.k), OVER_BUDGET)


@dataclass(frozen=True)
class RandomSelection:
    """The baseline every report compares against, at the same budget."""

    budget: int | None = None
    ratio: float | None = None
    seed: int = 0

    def __post_init__(self):
        _check_budget(self.budget, self.ratio)


def select_random(ids, config: RandomSelection):
    ids = _strings(ids)
    n = _budget(len(ids), config.budget, config.ratio)
    by_id = pc.sort_indices(ids).to_numpy()  # a stable sort: independent of input order
    picked = np.random.default_rng(config.seed).permutation(len(ids))[:n]
    return _reasons(len(ids), by_id[picked], OVER_BUDGET)


@dataclass(frozen=True)
class BudgetSelection:
    """mmSSR's sampler: capabilities round-robin, each gets remaining/num_caps; candidates
    above `threshold` best first, bucketed by style; bins visited smallest first with quota
    budget/num_bins, the shortfall carried to the next bin; chosen items leave the pool;
    repeat until the budget is filled or nothing is left.

    Two choices of ours. Candidates are also only the best `candidate_share` of the pool
    (never fewer than the budget): a scale-free `threshold`, for reward scores that have no
    absolute meaning. Without it, equal quotas fill a small style bin whatever its rows
    score, and defects cluster in small bins (markup debris and refusals style as short
    answers): on the demo pool at 30% the kept set had 0.66x random's defect rate, with the
    best half 0.2x. And rows rank by their weakest answer turn: one broken turn spoils a
    training sample however good the others are."""

    budget: int | None = None
    ratio: float | None = None
    threshold: float = -math.inf
    candidate_share: float = 0.5  # 1.0: every row above `threshold` is a candidate
    score: str = "answer_min_score"  # the score column that ranks candidates

    def __post_init__(self):
        _check_budget(self.budget, self.ratio)
        _share("candidate_share", self.candidate_share)


def select_budget(ids, scores, styles, config: BudgetSelection, capabilities=None):
    ids, scores = _strings(ids), _array(scores)
    n = len(ids)
    budget = _budget(n, config.budget, config.ratio)
    styles = _codes(styles)  # integers: every later comparison is cheap
    above = np.flatnonzero(scores > config.threshold)
    limit = max(budget, _count(config.candidate_share, n)) if config.candidate_share < 1 else None
    candidates = rank(scores, ids, above, limit)
    # Each pool stays ranked best first (a group's members keep their order); taking items
    # out keeps that order.
    if capabilities is None:
        pools = [candidates]
    else:
        caps = _codes(capabilities)[candidates]
        pools = [candidates[members] for members in _groups(caps)]
    chosen: list[np.ndarray] = []
    filled = 0
    while filled < budget and any(len(p) for p in pools):
        live = [i for i, pool in enumerate(pools) if len(pool)]
        share = max(1, (budget - filled) // len(live))  # fixed for the whole round
        for cap in live:
            if filled >= budget:
                break
            picked = _fill_by_style(pools[cap], styles, min(share, budget - filled))
            chosen.append(picked)
            filled += len(picked)
            pools[cap] = pools[cap][~np.isin(pools[cap], picked)]
    reasons = np.full(n, BELOW_THRESHOLD, dtype=np.int8)  # not a candidate
    reasons[candidates] = OVER_BUDGET
    if chosen:
        reasons[np.concatenate(chosen)] = KEPT
    return reasons


def _fill_by_style(pool: np.ndarray, styles: np.ndarray, share: int) -> np.ndarray:
    bins = _groups(styles[pool])
    bins.sort(key=len)  # smallest first; _groups gives label order, so ties stay stable
    picked: list[np.ndarray] = []
    taken = 0
    for bins_left, members in zip(range(len(bins), 0, -1), bins, strict=True):
        # An equal share of what is left: a small bin's shortfall carries to the next ones.
        quota = math.ceil((share - taken) / bins_left)
        picked.append(pool[members[:quota]])
        taken += len(picked[-1])
    return np.concatenate(picked) if picked else pool[:0]


Selection = Align2Selection | BudgetSelection | ThresholdSelection | TopKSelection | RandomSelection


def select(policy: Selection, columns: dict) -> np.ndarray:
    """Run `policy` over a scored table's columns: id, type, style, question_score,
    answer_score, answer_min_score (Arrow or numpy arrays, or sequences). Returns one reason
    code per row."""
    ids = _strings(columns["id"])
    if isinstance(policy, Align2Selection):
        q, a = columns["question_score"], columns["answer_score"]
        return select_align2(ids, columns["type"], q, a, policy)
    if isinstance(policy, BudgetSelection):
        return select_budget(ids, columns[policy.score], columns["style"], policy)
    if isinstance(policy, ThresholdSelection):
        return select_threshold(columns[policy.score], policy)
    if isinstance(policy, TopKSelection):
        return select_top_k(ids, columns[policy.score], policy)
    if isinstance(policy, RandomSelection):
        return select_random(ids, policy)
    raise TypeError(f"unknown selection policy {policy!r}; known: {', '.join(POLICIES)}")


def make_policy(name: str, **options) -> Selection:
    """A policy by name from flat options (the CLI's and the recipe's); unset options are None
    and take the policy's defaults."""
    options = {k: v for k, v in options.items() if v is not None}
    classes = {
        "align2": Align2Selection,
        "budget": BudgetSelection,
        "threshold": ThresholdSelection,
        "top-k": TopKSelection,
        "random": RandomSelection,
    }
    if name not in classes:
        raise Align2Error(f"unknown selection policy {name!r}; allowed: {', '.join(POLICIES)}")
    cls = classes[name]
    allowed = set(cls.__dataclass_fields__)
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise Align2Error(f"policy {name!r} takes no {', '.join(unknown)}; its options: {known}")
    required = [
        field.name
        for field in dataclasses.fields(cls)
        if field.default is dataclasses.MISSING and field.name not in options
    ]
    if required:
        flags = ", ".join(f"--{f.replace('_', '-')} (recipe: selection.{f})" for f in required)
        raise Align2Error(f"policy {name!r} needs {flags}")
    try:
        return cls(**options)
    except ValueError as err:
        raise Align2Error(f"policy {name!r}: {err}") from None
