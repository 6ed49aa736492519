"""Bar: peak RSS when scoring 1M text rows with a tiny model is <= 1.3x that of 100k rows
(scoring streams shard by shard from memory-mapped Arrow files; nothing grows with the
pool). Each size runs in its own child process; rows are built on disk with
`Dataset.from_generator`, as a large pool would be. Prints one JSON line."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET, SIZES = 1.3, (100_000, 1_000_000)


def child(rows: int, work: Path) -> None:
    import datasets

    from align2.builders.score import ScoringConfig, score_dataset
    from align2.models.backbones import build_backbone

    model = work / "tiny-text"
    if not model.exists():
        backbone = build_backbone("tiny-text", hidden_size=32, intermediate_size=64)
        backbone.model.save_pretrained(model)
        backbone.tokenizer.save_pretrained(model)

    def generate(n):
        for i in range(n):
            yield {
                "id": f"row-{i:07d}",
                "conversations": [
                    {"from": "human", "value": f"<image>\nWhat is object {i % 97}?"},
                    {"from": "gpt", "value": f"It is a thing number {i % 89}."},
                ],
                "type": "conversation",
            }

    pool = datasets.Dataset.from_generator(
        generate, gen_kwargs={"n": rows}, cache_dir=str(work / f"pool-{rows}")
    )
    config = ScoringConfig(str(model), str(model), batch_size=256, window=4096)
    scored = score_dataset(pool, config, work / f"scores-{rows}")
    assert len(scored) == rows


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), Path(sys.argv[3]))
        return 0
    work = Path(tempfile.mkdtemp(prefix="align2-bench-memory-"))
    peak_mb, seconds = {}, {}
    for rows in SIZES:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--child", str(rows), str(work)],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        seconds[rows] = round(time.perf_counter() - start, 1)
        # ru_maxrss of the children is the largest child so far; sizes run small to large.
        peak_mb[rows] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    value = peak_mb[SIZES[1]] / peak_mb[SIZES[0]]
    print(
        json.dumps(
            {
                "name": "scoring_peak_rss_1m_over_100k",
                "value": round(value, 3),
                "target": f"<= {TARGET}",
                "peak_rss_mb": {str(k): round(v, 1) for k, v in peak_mb.items()},
                "seconds": {str(k): v for k, v in seconds.items()},
            }
        )
    )
    return 0 if value <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
