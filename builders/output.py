"""Writing curation outputs: Parquet with images embedded (the Hub's layout, so the files load
anywhere), the `scored` table without image bytes, the ledger and the quality report."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
from datasets.table import embed_table_storage

from align2.builders.curate import Curation
from align2.progress import stage_bar

CURATED_FILE = "data/train-00000-of-00001.parquet"
SCORED_FILE = "scored/train-00000-of-00001.parquet"
LEDGER_FILE, QUALITY_FILE, SELECTION_FILE = "ledger.json", "quality.json", "selection.json"
MODELS_FILE = "models.json"  # the reward models that scored: later stages reuse them


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


def write_curation(
    curation: Curation, out: Path, models: dict, quality: dict | None = None
) -> dict:
    """The kept rows (images embedded), every row's scores and decision (no image bytes),
    the ledger, the reward models used and, when ground truth exists, the quality report.
    Returns the paths."""
    out = Path(out)
    paths = {
        "curated": write_parquet(curation.kept, out / CURATED_FILE),
        "scored": write_parquet(
            curation.scored.remove_columns("image"), out / SCORED_FILE, embed_images=False
        ),
        "ledger": write_json(curation.ledger.to_dict(), out / LEDGER_FILE),
        "models": write_json(models, out / MODELS_FILE),
        "selection": write_json(curation.selection, out / SELECTION_FILE),
    }
    if quality is not None:
        paths["quality"] = write_json(quality, out / QUALITY_FILE)
    return {name: str(path) for name, path in paths.items()}
