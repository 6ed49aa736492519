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
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from align2.errors import Align2Error

REASONS = (None, "below_question_cut", "below_answer_cut", "below_threshold", "over_budget")
KEPT, BELOW_QUESTION_CUT, BELOW_ANSWER_CUT, BELOW_THRESHOLD, OVER_BUDGET = range(len(REASONS))
POLICIES = ("align2", "budget", "threshold", "top-k", "random")


def rows_at_share(ratio: float, n: int) -> int:
    """round(ratio * n), halves up (Python's round() is banker's rounding)."""
    return int(math.floor(ratio * n + 0.5))


def _budget(n: int, budget: int | None, ratio: float | None) -> int:
    return min(n, budget if budget is not None else rows_at_share(ratio, n))


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
    for survivors in question_cut(ids, types, q, config.question_ratio):
        reasons[survivors] = BELOW_ANSWER_CUT
        kept = best(a, ids, survivors, rows_at_share(config.answer_ratio, len(survivors)))
        reasons[kept] = KEPT
    return reasons


def question_cut(ids, types, question_scores, share: float) -> list[np.ndarray]:
    """The seed's first stage: per type, the rows of the best `share` by question score."""
    return [
        best(question_scores, ids, members, rows_at_share(share, len(members)))
        for members in _groups(_codes(types))
    ]


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
    """mmSSR's sampler behind both reward models' gates.

    Gates first: per type, only the best `question_share` by question score pass (the
    question model's cut, as `align2`'s first stage: a well-written answer to a question the
    image cannot answer never becomes a candidate), and of those only the best
    `candidate_share` of the pool by `score` (never fewer than the budget): reward scores
    have no absolute meaning, so a share stands in for mmSSR's threshold. Rows rank by their
    weakest answer turn: one broken turn spoils a sample however good the others are.

    Then mmSSR's round robin over capabilities (the answer score is the one capability when
    there are no capability scores): each round gives every capability
    max(remaining // capabilities, 1); its candidates above `threshold`, best first, are
    binned by style (a row with several styles sits in each of its bins); bins are visited
    smallest first with equal quotas max(share // bins, 1), a bin's shortfall carried to the
    next; chosen rows leave every pool; a capability that returns nothing leaves the round.
    It stops when the budget is met or nothing is left: the shortfall is then the budget
    minus the rows kept (mmSSR's loop divides by zero there)."""

    budget: int | None = None
    ratio: float | None = None
    question_share: float = 0.8  # 1.0: no question cut
    candidate_share: float = 0.4  # of the pool; 1.0: every question survivor
    threshold: float = -math.inf  # a capability score must exceed it (mmSSR's `thr`)
    score: str = "answer_min_score"  # the score column of the answer cut

    def __post_init__(self):
        _check_budget(self.budget, self.ratio)
        _share("question_share", self.question_share)
        _share("candidate_share", self.candidate_share)


def select_budget(
    ids, types, question_scores, scores, styles, config: BudgetSelection, capabilities=None
):
    """`capabilities`: name -> one score per row (NaN: no score); None or empty: the answer
    score ranks alone."""
    ids, q, scores = _strings(ids), _array(question_scores), _array(scores)
    n = len(ids)
    budget = _budget(n, config.budget, config.ratio)
    reasons = np.full(n, BELOW_QUESTION_CUT, dtype=np.int8)
    if config.question_share < 1:
        survivors = question_cut(ids, types, q, config.question_share)
        survivors = np.concatenate(survivors) if survivors else np.arange(0)
    else:
        survivors = np.arange(n)
    reasons[survivors] = BELOW_ANSWER_CUT
    limit = max(budget, rows_at_share(config.candidate_share, n))
    candidates = best(scores, ids, survivors, limit) if config.candidate_share < 1 else survivors
    reasons[candidates] = BELOW_THRESHOLD
    rankings = list(capabilities.values()) if capabilities else [scores]
    sampler = _Sampler(ids, candidates, _StyleLabels(styles), rankings, config.threshold)
    reasons[sampler.eligible()] = OVER_BUDGET
    reasons[sampler.round_robin(budget)] = KEPT
    return reasons


class _StyleLabels:
    """Each row's styles (mmSSR's styler may give several, comma-separated) as a code per
    distinct style string and a (codes x labels) membership table."""

    def __init__(self, styles):
        encoded = pc.dictionary_encode(_strings(styles), null_encoding="encode")
        combos = [
            sorted({part.strip() for part in (combo or "").split(",")} - {""})
            for combo in encoded.dictionary.to_pylist()
        ]
        self.labels = sorted({label for combo in combos for label in combo})
        column = {label: i for i, label in enumerate(self.labels)}
        self.member = np.zeros((len(combos), len(self.labels)), dtype=bool)
        for code, combo in enumerate(combos):
            self.member[code, [column[label] for label in combo]] = True
        self.codes = encoded.indices.to_numpy()


class _Sampler:
    """mmSSR's round robin over capability pools, in the candidates' own numbering
    (positions in `candidates`). Each capability's rows per style label are counted as rows
    leave, not recounted per pick; the k best of a bin are a partition, never a sort of it."""

    def __init__(self, ids, candidates, labels: _StyleLabels, rankings, threshold: float):
        self.candidates = candidates = np.sort(candidates)  # gathers below read in order
        self.member = labels.member.astype(np.int64)
        self.rank = np.empty(len(candidates), dtype=np.int64)  # ties: the smaller id first
        self.rank[pc.sort_indices(ids.take(pa.array(candidates))).to_numpy()] = np.arange(
            len(candidates)
        )
        self.codes = labels.codes[candidates]
        per_label = _label_positions(self.codes, labels.member)

        def pool(scores):  # numpy releases the GIL here: capabilities build side by side
            negated = -_array(scores)[candidates].astype(np.float32)  # the best is the least
            above = negated < -threshold  # NaN: never
            np.copyto(negated, np.float32(np.nan), where=~above)  # NaN: not in this pool
            counts = [np.count_nonzero(above[at]) for at in per_label]
            return above, [_Bin(at, negated, self.rank) for at in per_label], counts

        with ThreadPoolExecutor(os.cpu_count()) as threads:
            above, self.bins, counts = zip(*threads.map(pool, rankings), strict=True)
        self.above = np.column_stack(above)  # (rows, capabilities)
        # Eligible rows per capability and style label, kept up to date as rows leave.
        self.counts = np.array(counts)
        self.alive = np.ones(len(candidates), dtype=bool)  # not chosen yet

    def eligible(self) -> np.ndarray:
        return self.candidates[self.above.any(axis=1)]

    def choose(self, positions: np.ndarray) -> np.ndarray:
        """These rows leave every capability's pool."""
        self.alive[positions] = False
        codes, flags = self.codes[positions], self.above[positions]
        for cap in range(len(self.bins)):  # rows per style code, then per label
            per_code = np.bincount(codes[flags[:, cap]], minlength=len(self.member))
            self.counts[cap] -= per_code @ self.member
        return self.candidates[positions]

    def round_robin(self, budget: int) -> np.ndarray:
        chosen, filled = [], 0
        live = [cap for cap in range(len(self.bins)) if self.counts[cap].any()]
        while filled < budget and live:
            share = max((budget - filled) // len(live), 1)  # fixed for the round
            dry = []
            for cap in live:
                picked = self.pick_by_style(cap, min(share, budget - filled))
                if not len(picked):
                    dry.append(cap)
                chosen.append(picked)
                filled += len(picked)
                if filled >= budget:
                    break
            live = [cap for cap in live if cap not in dry]
        return np.concatenate(chosen) if chosen else np.arange(0)

    def pick_by_style(self, cap: int, share: int) -> np.ndarray:
        """mmSSR's per-capability pick: bins smallest first, equal quotas, debt carried."""
        counts = self.counts[cap]
        order = [label for label in np.argsort(counts, kind="stable") if counts[label]]
        if not order:
            return np.arange(0)
        quota, debt, picked, taken = max(share // len(order), 1), 0, [], 0
        for label in order:
            if taken >= share:
                break
            available = int(counts[label])  # rows chosen from earlier bins are gone
            take = min(quota + debt, available)
            debt = max(quota + debt - available, 0)
            picked.append(self.choose(self.bins[cap][label].best(take, self.alive)))
            taken += len(picked[-1])
        return np.concatenate(picked)


def _label_positions(codes: np.ndarray, member: np.ndarray) -> list[np.ndarray]:
    """Positions per style label (a row with several labels is in each)."""
    groups = {int(codes[g[0]]): g for g in _groups(codes)}
    empty = np.arange(0)
    return [  # ascending, so that gathers by them read memory in order
        np.sort(np.concatenate([groups.get(c, empty) for c in np.flatnonzero(member[:, label])]))
        for label in range(member.shape[1])
    ]


class _Bin:
    """One style label's rows in one capability's pool. The next best few are kept between
    calls (as a set: the k best of them are a partition), so a round that wants a handful
    does not partition the whole bin again."""

    def __init__(self, positions: np.ndarray, negated: np.ndarray, rank: np.ndarray):
        # negated: the pool's scores, negated (the best is the smallest), NaN outside it
        self.positions, self.negated, self.rank = positions, negated, rank
        self.front, self.complete = positions[:0], False

    def best(self, k: int, alive: np.ndarray) -> np.ndarray:
        """The k best alive rows (score descending, then id), in no order."""
        self.front = self.front[alive[self.front]]
        if len(self.front) < k and not self.complete:
            values = self.negated[self.positions]
            values[~alive[self.positions]] = np.nan  # NaN sorts last
            n = len(values) - int(np.isnan(values).sum())
            m = min(n, k + k // 4 + 1024)
            self.front = self.positions[_smallest(values, self.positions, self.rank, m)]
            self.complete = m == n
        if k >= len(self.front):
            taken, self.front = self.front, self.front[:0]
            return taken
        chosen = np.zeros(len(self.front), dtype=bool)
        chosen[_smallest(self.negated[self.front], self.front, self.rank, k)] = True
        taken, self.front = self.front[chosen], self.front[~chosen]
        return taken


def _smallest(values: np.ndarray, positions: np.ndarray, rank: np.ndarray, m: int):
    """Indices of the m smallest non-NaN values (ties: the smaller rank), in no order."""
    cut = np.partition(values, m - 1)[m - 1] if m else -np.inf
    below, at = np.flatnonzero(values < cut), np.flatnonzero(values == cut)
    need = m - len(below)
    if need < len(at):  # ties at the cut: the smallest ranks
        at = at[np.argpartition(rank[positions[at]], need - 1)[:need]] if need else at[:0]
    return np.concatenate([below, at])


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
        return select_budget(
            ids,
            columns["type"],
            columns["question_score"],
            columns[policy.score],
            columns["style"],
            policy,
            columns.get("capabilities"),
        )
    if isinstance(policy, ThresholdSelection):
        return select_threshold(columns[policy.score], policy)
    if isinstance(policy, TopKSelection):
        return select_top_k(ids, columns[policy.score], policy)
    if isinstance(policy, RandomSelection):
        return select_random(ids, policy)
    raise TypeError(f"unknown selection policy {policy!r}; known: {', '.join(POLICIES)}")


def policy_budget(policy: Selection, n: int) -> int | None:
    """The rows a budgeted policy is asked to keep out of n (None: the policy has no budget)."""
    if isinstance(policy, (BudgetSelection, RandomSelection)):
        return _budget(n, policy.budget, policy.ratio)
    return None


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
