"""Bar: a VLM instruction-tuned on the `align2`-curated demo pool beats the same VLM tuned on
random subsets of the same size by >= 2 accuracy points on easy-VQA's test split, with at
most a third of their share of defective answers (Align²LLaVA's headline, in miniature).

The demo pool is built from easy-VQA's train split (4,000 images, 30% defects) and curated
with the demo reward models by `align2` (30% x 30%) and `budget` (30%). The embedded tiny
LLaVA (`evaluate.tiny_llava`, built once and cached) is tuned with TRL's `SFTTrainer` for
the same steps on each curated set, three random subsets and the whole pool. Prints one
JSON line: `value` (points), `defect_ratio`, and every run's figures and subset size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from align2.builders.pipeline import run_curation
from align2.builders.recipe import Evaluate
from align2.builders.select import Align2Selection, BudgetSelection
from align2.data.sources import LlavaJsonSource
from align2.demo.pool import DemoPoolConfig, build_demo_pool, write_demo_pool
from align2.demo.reward_models import demo_reward_models
from align2.evaluate.compare import compare, settings_from
from align2.evaluate.tiny_llava import embedded_base

TARGET_POINTS, TARGET_DEFECT_RATIO = 2.0, 0.33
POLICIES = {
    "align2": Align2Selection(question_ratio=0.3, answer_ratio=0.3),
    "budget": BudgetSelection(ratio=0.3),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="default: the recipe's")
    parser.add_argument("--test-questions", type=int, help="default: all")
    parser.add_argument("--generated", type=int, help="default: the recipe's")
    given = {k: v for k, v in vars(parser.parse_args()).items() if v is not None}
    started = time.perf_counter()
    question_model, answer_model = demo_reward_models()
    base_started = time.perf_counter()
    base = embedded_base()
    base_seconds = time.perf_counter() - base_started
    work = Path(tempfile.mkdtemp(prefix="align2-bench-downstream-"))
    write_demo_pool(build_demo_pool(DemoPoolConfig(split="train")), work / "pool")
    source = LlavaJsonSource(work / "pool" / "llava_pool.json", work / "pool" / "images")
    curated, pool = {}, None
    for name, policy in POLICIES.items():
        run = run_curation(
            sources=[source],
            out=work / name,
            selection=policy,
            question_model=str(question_model),
            answer_model=str(answer_model),
        )
        curated[name] = run.curation.kept
        pool = run.curation.scored
    settings = settings_from(Evaluate(**given))
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    result = compare(pool, curated, base, settings, work / "runs", log=log)
    line = {
        "name": "downstream_sft_align2_vs_random",
        "unit": "accuracy points",
        "value": result.pop("value"),
        "target": TARGET_POINTS,
        "defect_ratio": result.pop("defect_ratio"),
        "defect_ratio_target": TARGET_DEFECT_RATIO,
        **result,
        "base_model_seconds": round(base_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    for run in line["runs"].values():
        run.pop("examples", None)
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
