"""Bar: an unchanged scoring re-run is >= 50x faster than the first run (it loads from the
fingerprint cache). Demo pool (easy-VQA test split, 1000 rows), demo reward models.
Prints one JSON line."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from align2.builders.score import ScoringConfig, score_dataset
from align2.data.sources import LlavaJsonSource, load_canonical
from align2.data.validate import Quarantine, ValidationConfig
from align2.demo.pool import DemoPoolConfig, build_demo_pool, write_demo_pool
from align2.demo.reward_models import demo_reward_models

TARGET = 50.0


def demo_pool_dataset(work: Path, split: str = "test"):
    write_demo_pool(build_demo_pool(DemoPoolConfig(split=split)), work / "pool")
    images = work / "pool" / "images"
    source = LlavaJsonSource(work / "pool" / "llava_pool.json", images)
    return load_canonical(source, ValidationConfig(image_folder=images), Quarantine())


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="align2-bench-rerun-"))
    dataset = demo_pool_dataset(work)
    question, answer = demo_reward_models()
    config = ScoringConfig(str(question), str(answer))
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        score_dataset(dataset, config, work / "cache")
        seconds.append(time.perf_counter() - start)
    value = seconds[0] / seconds[1]
    print(
        json.dumps(
            {
                "name": "scoring_rerun_speedup",
                "value": round(value, 1),
                "target": f">= {TARGET}",
                "rows": len(dataset),
                "first_s": round(seconds[0], 3),
                "rerun_s": round(seconds[1], 4),
            }
        )
    )
    return 0 if value >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
