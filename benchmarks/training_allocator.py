"""CPU training with glibc's allocator told to keep freed memory vs its defaults.

Trains the demo answer model for `--steps` steps twice, each in a fresh process (the setting
is process-wide): once as `train_reward_model` does, once with `keep_freed_memory` turned
off. Prints one JSON line: `value` is default seconds / kept seconds, with the minor page
faults of both. The weights come out identical; only the time differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import dataclasses, json, resource, sys, time
from pathlib import Path
import align2.reward.train as train
from align2.reward.annotations import preference_pairs
annotations, steps, mode, out = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if mode == "default":
    train.keep_freed_memory = lambda: None
pairs = preference_pairs(annotations / "answers.json", image_folder=annotations / "images")
config = dataclasses.replace(train.DEMO_ANSWER_TRAINING, max_steps=steps)
faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
train.train_reward_model(pairs, config, Path(out))
print(json.dumps({"seconds": time.perf_counter() - start,
                  "page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}))
"""


def main() -> int:
    from align2.demo.annotations import DemoAnnotationConfig, write_demo_annotations

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    steps = parser.parse_args().steps
    work = Path(tempfile.mkdtemp(prefix="align2-bench-allocator-"))
    write_demo_annotations(DemoAnnotationConfig(split="train", seed=0), work / "annotations")
    runs = {}
    for mode in ("default", "keep"):
        child = [sys.executable, "-c", CHILD, work / "annotations", str(steps), mode, work / mode]
        done = subprocess.run(list(map(str, child)), capture_output=True, text=True, check=True)
        runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    value = runs["default"]["seconds"] / runs["keep"]["seconds"]
    same = (work / "default" / "model.safetensors").read_bytes() == (
        work / "keep" / "model.safetensors"
    ).read_bytes()
    result = {
        "name": "cpu_trainingkeep_freed_memory_speedup",
        "value": round(value, 3),
        "target": "> 1.0",
        "steps": steps,
        "default_seconds": round(runs["default"]["seconds"], 1),
        "kept_seconds": round(runs["keep"]["seconds"], 1),
        "default_page_faults": runs["default"]["page_faults"],
        "kept_page_faults": runs["keep"]["page_faults"],
        "identical_weights": same,
    }
    print(json.dumps(result))
    return 0 if value > 1.0 and same else 1


if __name__ == "__main__":
    sys.exit(main())
