"""Quality report: when ground truth exists (the demo pool's truth.jsonl), the defect rate of
the kept set against `random` at the same budget, overall and per defect kind; and the
trade-off curve: every policy's kept defect rate at budgets of 5-50% (mmSSR's table is one
slice of it).

`random` is the mean over many seeded draws: one draw of ~100 rows from a pool whose defect
kinds each hit ~4% of rows is too noisy to compare against.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from align2.builders.select import (
    KEPT,
    Align2Selection,
    BudgetSelection,
    RandomSelection,
    Selection,
    TopKSelection,
    rows_at_share,
    select,
    select_random,
)

RANDOM_DRAWS = 200


def read_truth(path: str | Path) -> dict[str, list[str]]:
    """id -> defect kinds (empty for a clean row), from a JSON Lines truth file."""
    with open(path, encoding="utf-8") as f:
        return {str(r["id"]): list(r["defects"]) for r in map(json.loads, f) if r}


def _rates(defects: Sequence[list[str]], mask: np.ndarray, kinds: list[str]) -> dict:
    chosen = [d for d, keep in zip(defects, mask, strict=True) if keep]
    n = max(1, len(chosen))
    rates = {kind: sum(kind in d for d in chosen) / n for kind in kinds}
    return {"any": sum(bool(d) for d in chosen) / n, **rates}


def quality_report(
    ids: Sequence[str], kept: np.ndarray, truth: dict[str, list[str]], *, seed: int = 0
) -> dict:
    """Defect rates of the kept rows vs random at the same budget; ratio = kept / random."""
    missing = [i for i in ids if i not in truth]
    if missing:
        raise ValueError(f"{len(missing)} row(s) have no ground truth, e.g. {missing[0]!r}")
    defects = [truth[i] for i in ids]
    kinds = sorted({kind for d in defects for kind in d})
    kept_rates = _rates(defects, kept, kinds)
    budget = int(np.sum(kept))
    draws = [
        _rates(
            defects,
            select_random(ids, RandomSelection(budget=budget, seed=seed + d)) == KEPT,
            kinds,
        )
        for d in range(RANDOM_DRAWS)
    ]
    random_rates = {k: float(np.mean([draw[k] for draw in draws])) for k in kept_rates}
    return {
        "rows": len(ids),
        "kept": budget,
        "random_draws": RANDOM_DRAWS,
        "defect_rate": {
            kind: {
                "kept": round(kept_rates[kind], 4),
                "random": round(random_rates[kind], 4),
                "ratio": round(kept_rates[kind] / random_rates[kind], 4)
                if random_rates[kind]
                else None,
            }
            for kind in kept_rates
        },
    }


TRADEOFF_BUDGETS = (0.05, 0.1, 0.2, 0.3, 0.5)


def tradeoff_policies(budget: float, n: int) -> dict[str, Selection]:
    """Each policy at a share of the pool: `align2` with equal stage shares (their product is
    the budget), `budget` with its default gates, `top-k` by answer score."""
    stage = math.sqrt(budget)
    return {
        "align2": Align2Selection(question_ratio=stage, answer_ratio=stage),
        "budget": BudgetSelection(ratio=budget),
        "top-k": TopKSelection(k=rows_at_share(budget, n)),
    }


def tradeoff_report(ids: Sequence[str], columns: dict, truth: dict[str, list[str]]) -> dict:
    """Rows kept and their defect rate at budgets of 5-50% of the scored rows (`ids`, the
    rows of `columns`), per policy, against `random`'s expected rate (the pool's: every row
    is equally likely)."""
    defective = np.array([bool(truth[i]) for i in ids])
    base = float(defective.mean()) if len(ids) else 0.0
    curves: dict[str, list[dict]] = {}
    for budget in TRADEOFF_BUDGETS:
        for name, policy in tradeoff_policies(budget, len(ids)).items():
            kept = select(policy, columns) == KEPT
            rate = float(defective[kept].mean()) if kept.any() else 0.0
            curves.setdefault(name, []).append(
                {
                    "budget": budget,
                    "kept": int(kept.sum()),
                    "defect_rate": round(rate, 4),
                    "ratio": round(rate / base, 4) if base else None,
                }
            )
    return {
        "budgets": list(TRADEOFF_BUDGETS),
        "random_defect_rate": round(base, 4),
        "policies": curves,
    }
