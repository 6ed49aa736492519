"""Bar: selection over 10M synthetic scores takes < 5 s (each policy, one process, 2 cores).

Scores are float32 logits (what reward models emit), as numpy arrays; ids, types and styles
are Arrow string arrays: the columns as `curate.decide` hands them over from the scored
table. Prints one JSON line; `value` is the slowest policy's seconds.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pyarrow as pa

from align2.builders.select import (
    KEPT,
    Align2Selection,
    BudgetSelection,
    RandomSelection,
    select_align2,
    select_budget,
    select_random,
)
from align2.builders.styler import STYLES

ROWS, TARGET_S = 10_000_000, 5.0


def main() -> int:
    rng = np.random.default_rng(0)
    ids = pa.array(np.char.add("row-", np.char.zfill(np.arange(ROWS).astype("U8"), 8)))
    type_names = np.array(["conversation", "detail", "complex_reasoning"], dtype=object)
    types = pa.array(type_names[rng.integers(0, 3, ROWS)])
    styles = pa.array(np.array(STYLES, dtype=object)[rng.integers(0, len(STYLES), ROWS)])
    question = rng.standard_normal(ROWS, dtype=np.float32)
    answer = rng.standard_normal(ROWS, dtype=np.float32)
    runs = {
        "align2": lambda: select_align2(ids, types, question, answer, Align2Selection()),
        "budget": lambda: select_budget(ids, answer, styles, BudgetSelection(ratio=0.3)),
        "random": lambda: select_random(ids, RandomSelection(ratio=0.09)),
    }
    seconds, kept = {}, {}
    for name, run in runs.items():
        start = time.perf_counter()
        reasons = run()
        seconds[name] = round(time.perf_counter() - start, 3)
        kept[name] = int((reasons == KEPT).sum())
    value = max(seconds.values())
    print(
        json.dumps(
            {
                "name": "selection_10m_seconds",
                "value": value,
                "target": f"< {TARGET_S}",
                "rows": ROWS,
                "seconds": seconds,
                "kept": kept,
            }
        )
    )
    return 0 if value < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
