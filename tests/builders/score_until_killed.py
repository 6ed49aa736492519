"""Run by test_score.py in a child process: score a pool on an engine, to be killed mid-way."""

import sys
from pathlib import Path

from align2.builders.score import ScoringConfig, score_dataset
from align2.data.engines import engine_named
from align2.data.sources import LlavaJsonSource, load_canonical
from align2.data.validate import Quarantine, ValidationConfig

if __name__ == "__main__":
    pool, question, answer, cache, engine = sys.argv[1:6]
    images = Path(pool) / "images"
    source = LlavaJsonSource(Path(pool) / "llava_pool.json", images)
    dataset = load_canonical(source, ValidationConfig(image_folder=images), Quarantine())
    config = ScoringConfig(question, answer, batch_size=4, window=8, checkpoint_rows=16)
    score_dataset(dataset, config, cache, engine_named(engine))
