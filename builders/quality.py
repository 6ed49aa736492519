"""Quality report: when ground truth exists (the demo pool's truth.jsonl), the defect rate of
the kept set against `random` at the same budget, overall and per defect kind.

`random` is the mean over many seeded draws: one draw of ~100 rows from a pool whose defect
kinds each hit ~4% of rows is too noisy to compare against.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from align2.builders.select import KEPT, RandomSelection, select_random

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
