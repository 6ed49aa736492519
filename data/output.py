"""Curation output files: their names, and Parquet with images embedded (the Hub's layout, so
the files load anywhere) or without image bytes (the `scored` table)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
from datasets.table import embed_table_storage

from align2.progress import stage_bar

CURATED_FILE = "data/train-00000-of-00001.parquet"
SCORED_FILE = "scored/train-00000-of-00001.parquet"
LEDGER_FILE, QUALITY_FILE, SELECTION_FILE = "ledger.json", "quality.json", "selection.json"
MODELS_FILE = "models.json"  # the reward models that scored: later stages reuse them
CANONICAL_FILE = "work/canonical.arrow"  # the validated pool, memory-mapped
KEPT_DECISION, DROPPED_DECISION = "kept", "dropped"  # the scored table's `decision` column


def write_parquet(dataset: datasets.Dataset, path: Path, *, embed_images: bool = True) -> Path:
    """One Parquet file; image files are read into the rows when `embed_images`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if embed_images:
        with stage_bar():
            dataset = dataset.with_format("arrow").map(
                embed_table_storage, batched=True, desc="embedding images"
            )
        dataset = dataset.with_format(None)
    dataset.to_parquet(str(path))
    return path


def write_json(data: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
