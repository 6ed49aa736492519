"""Bar (issue "The real job"): the pipeline on a LLaVA-Instruct-shaped pool scales linearly.

Builds the pool itself (the 58k/23k/77k type mix, 2-5 rounds per conversation, long
answers, ~1.94 rows per image, ids shared per image, 640x480 JPEGs) and runs validate ->
dedup -> style -> score -> select with tiny random tiny-vlm reward models at 5k and 20k
rows, each size in its own child process (for its peak RSS). The 5k pool is the 20k pool's
first rows. Validation and dedup also run with one process and with two, side by side.

Prints one JSON line: `value` = rows/s at 20k / rows/s at 5k (target >= 0.9), the
per-stage rows/s, peak RSS per size (target: 20k <= 1.3x 5k), the speed-up of validation +
dedup with 2 processes (target >= 1.7x) and a projection for LLaVA-Instruct's 158k rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (5_000, 20_000)
TARGETS = {"value": 0.9, "rss_ratio": 1.3, "parallel_speedup": 1.7}
LLAVA_INSTRUCT_ROWS = 158_000


def _timed(label: str, times: dict, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    times[label] = time.perf_counter() - start
    return out


def child(rows: int, work: Path, num_proc: int, stages: str) -> dict:
    """Run the stages on the pool's first `rows` rows; seconds per stage and peak RSS."""
    import datasets

    from align2.builders.curate import decide
    from align2.builders.dedup import DedupConfig, find_duplicates
    from align2.builders.score import ScoringConfig, score_dataset
    from align2.builders.select import Align2Selection
    from align2.builders.styler import label_styles
    from align2.data.sources import LlavaJsonSource, load_canonical
    from align2.data.validate import Quarantine, ValidationConfig

    datasets.disable_progress_bars()
    run = work / f"run-{rows}-{num_proc}-{stages}"
    subset = run / "pool.json"
    subset.parent.mkdir(parents=True, exist_ok=True)
    subset.write_text(json.dumps(json.loads((work / "pool.json").read_text())[:rows]))
    times: dict[str, float] = {}
    quarantine = Quarantine()
    pool = _timed(
        "validate",
        times,
        load_canonical,
        LlavaJsonSource(subset, work / "images"),
        ValidationConfig(),
        quarantine,
        path=run / "canonical.arrow",
        num_proc=num_proc,
    )
    assert quarantine.ledger.n_quarantined == 0 and len(pool) == rows
    dedup = _timed("dedup", times, find_duplicates, pool, DedupConfig(), num_proc=num_proc)
    if stages == "all":
        styled = _timed("style", times, pool.map, label_styles, batched=True)
        unique = styled.select([i for i, r in enumerate(dedup.reasons) if r is None])
        config = ScoringConfig(str(work / "question"), str(work / "answer"))
        scored = _timed("score", times, score_dataset, unique, config, run / "scores")
        _timed("select", times, decide, scored, Align2Selection(0.3, 0.3))
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return {"seconds": times, "peak_rss_mb": round(peak / 1024, 1)}


def _in_child(rows: int, work: Path, num_proc: int, stages: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(rows), str(work), str(num_proc), stages],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _prepare(work: Path, rows: int) -> None:
    from align2.data.sources.llava_json import write_llava_json
    from align2.demo.llava_shaped import LlavaShapedConfig, build_llava_shaped
    from align2.models.backbones import build_backbone

    pool = build_llava_shaped(LlavaShapedConfig(rows=rows, seed=0), work / "images")
    write_llava_json(pool, work / "pool.json")
    for seed, name in enumerate(("question", "answer")):
        backbone = build_backbone("tiny-vlm", seed=seed)
        backbone.model.save_pretrained(work / name)
        backbone.tokenizer.save_pretrained(work / name)


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        rows, work, num_proc, stages = sys.argv[2:]
        print(json.dumps(child(int(rows), Path(work), int(num_proc), stages)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=SIZES)
    args = parser.parse_args()
    small, large = args.sizes
    work = Path(tempfile.mkdtemp(prefix="align2-bench-llava-"))
    start = time.perf_counter()
    _prepare(work, large)
    prepare_s = time.perf_counter() - start
    runs = {rows: _in_child(rows, work, 2, "all") for rows in (small, large)}
    # Validation + dedup alone, one process against two, on the small pool.
    one, two = (_in_child(small, work, n, "validate+dedup") for n in (1, 2))

    def rate(rows: int, seconds: dict) -> float:
        return rows / sum(seconds.values())

    per_stage = {
        rows: {stage: round(rows / s, 1) for stage, s in run["seconds"].items()}
        for rows, run in runs.items()
    }
    value = rate(large, runs[large]["seconds"]) / rate(small, runs[small]["seconds"])
    front = {
        n: sum(r["seconds"][s] for s in ("validate", "dedup")) for n, r in ((1, one), (2, two))
    }
    total_large = sum(runs[large]["seconds"].values())
    print(
        json.dumps(
            {
                "bench": "llava_scale",
                "value": round(value, 3),
                "target": TARGETS["value"],
                "rows_per_s": {
                    rows: round(rate(rows, r["seconds"]), 1) for rows, r in runs.items()
                },
                "stage_rows_per_s": per_stage,
                "peak_rss_mb": {rows: r["peak_rss_mb"] for rows, r in runs.items()},
                "rss_ratio": round(runs[large]["peak_rss_mb"] / runs[small]["peak_rss_mb"], 3),
                "rss_target": TARGETS["rss_ratio"],
                "validate_dedup_s": {
                    "1 process": round(front[1], 1),
                    "2 processes": round(front[2], 1),
                },
                "parallel_speedup": round(front[1] / front[2], 2),
                "parallel_target": TARGETS["parallel_speedup"],
                "projected_158k_s": round(total_large * LLAVA_INSTRUCT_ROWS / large),
                "pool_build_s": round(prepare_s, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
