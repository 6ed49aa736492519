"""Bar: selection over 10M synthetic scores takes < 5 s (each policy, one process, 2 cores).

Reward scores are float32 logits (what reward models emit), as numpy arrays; ids, types and
styles are Arrow string arrays: the columns as `curate.decide` hands them over from the
scored table. `budget` also reads mmSSR's 14 capability ratings (integers 0-5, as its
scorer's files hold them: most rows tie) and multi-label styles (a fifth of the rows have
two, comma-separated, as mmSSR's styler gives them). Prints one JSON line; `value` is the
slowest policy's seconds.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pyarrow as pa

from align2.builders.capabilities import CAPABILITIES
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
    pairs = [f"{a}, {b}" for a in STYLES for b in STYLES if a < b]
    style_names = np.array(list(STYLES) + pairs, dtype=object)
    one = rng.integers(0, len(STYLES), ROWS)
    two = len(STYLES) + rng.integers(0, len(pairs), ROWS)
    styles = pa.array(style_names[np.where(rng.random(ROWS) < 0.2, two, one)])
    question = rng.standard_normal(ROWS, dtype=np.float32)
    answer = rng.standard_normal(ROWS, dtype=np.float32)
    ratings = {c: rng.integers(0, 6, ROWS).astype(np.float32) for c in CAPABILITIES}
    budget = BudgetSelection(ratio=0.3, threshold=0)
    runs = {
        "align2": lambda: select_align2(ids, types, question, answer, Align2Selection()),
        "budget": lambda: select_budget(ids, types, question, answer, styles, budget, ratings),
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
