"""Bar: on the easy-VQA demo pool (test split, default defect rate) with the demo reward
models (trained on the train split), the `align2` policy at 30% x 30% and the `budget`
policy at 30% keep sets whose defect rate is <= 1/4 of `random`'s at the same budget, per
defect kind.

Trains the demo reward models on first use (~7 minutes, cached after). Prints one JSON line:
`value` is the worst per-kind ratio of the two policies (`overall_value` the worse overall
ratio), with both quality reports' per-kind ratios and kept-row counts. `--answer-seed N`
trains the answer model from another start (the demo's is 0; docs/tiny-vlm-notes.md,
"Reproducibility").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from align2.builders.demo_pool import DemoPoolConfig, build_demo_pool, write_demo_pool
from align2.builders.pipeline import run_curation
from align2.builders.select import Align2Selection, BudgetSelection
from align2.builders.sources import LlavaJsonSource
from align2.reward.demo_models import demo_reward_models
from align2.reward.train import DEMO_ANSWER_TRAINING

TARGET = 0.25
POLICIES = {
    "align2_30x30": Align2Selection(question_ratio=0.3, answer_ratio=0.3),
    "budget_30": BudgetSelection(ratio=0.3),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answer-seed", type=int, default=DEMO_ANSWER_TRAINING.seed)
    answer_seed = parser.parse_args().answer_seed
    question_model, answer_model = demo_reward_models(answer_seed=answer_seed)
    work = Path(tempfile.mkdtemp(prefix="align2-bench-quality-"))
    pool = work / "pool"
    write_demo_pool(build_demo_pool(DemoPoolConfig(split="test")), pool)
    reports = {}
    for name, policy in POLICIES.items():
        run = run_curation(
            sources=[LlavaJsonSource(pool / "llava_pool.json", pool / "images")],
            out=work / name,
            selection=policy,
            question_model=str(question_model),
            answer_model=str(answer_model),
            truth=pool / "truth.jsonl",
        )
        rates = run.quality["defect_rate"]
        reports[name] = {
            "kept": run.quality["kept"],
            "ratio": rates["any"]["ratio"],
            "kept_rate": rates["any"]["kept"],
            "random_rate": rates["any"]["random"],
            "per_kind_ratio": {k: v["ratio"] for k, v in rates.items() if k != "any"},
            "per_kind_kept_rows": {
                k: round(v["kept"] * run.quality["kept"]) for k, v in rates.items() if k != "any"
            },
        }
    value = max(v for r in reports.values() for v in r["per_kind_ratio"].values() if v is not None)
    result = {
        "name": "demo_kept_defect_rate_vs_random",
        "value": value,
        "target": f"<= {TARGET}",
        "answer_seed": answer_seed,
        "overall_value": max(r["ratio"] for r in reports.values()),
        "scored_rows": run.quality["rows"],
        **reports,
    }
    print(json.dumps(result))
    return 0 if value <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
