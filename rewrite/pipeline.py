"""`align2 rewrite` as a library call: read kept rows, rewrite, write them back with the
audit columns and a report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import datasets

from align2.data.engines import engine_named
from align2.data.output import CURATED_FILE, MODELS_FILE, write_json, write_parquet
from align2.errors import Align2Error
from align2.rewrite.rewriter import RewriteConfig, rewrite_dataset

REPORT_FILE, WORK_FOLDER = "rewrite_report.json", "work"  # work: the caches


def read_rows(source: str | Path) -> datasets.Dataset:
    """Rows from a curation output folder, a Parquet file, a `save_to_disk` folder or a
    Hub dataset id (its train split)."""
    path = Path(source)
    if path.is_dir() and (path / CURATED_FILE).is_file():
        return datasets.load_dataset("parquet", data_files=str(path / CURATED_FILE), split="train")
    if path.is_dir() and (path / "README.md").is_file():  # a release repo in the local hub
        return datasets.load_dataset(str(path), split="train")
    if path.is_file() and path.suffix == ".parquet":
        return datasets.load_dataset("parquet", data_files=str(path), split="train")
    if path.is_dir() and (path / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(path))
    if path.exists():
        raise Align2Error(
            f"cannot read rows from {path}: pass a curation output folder (with "
            f"{CURATED_FILE}), a release folder, a .parquet file, a save_to_disk folder or a "
            "Hub dataset id"
        )
    return datasets.load_dataset(str(source), split="train")


def curation_answer_model(source: str | Path) -> tuple[str | None, str | None]:
    """The answer reward model a curation output folder was scored with, if it is one."""
    path = Path(source) / MODELS_FILE
    if not path.is_file():
        return None, None
    models = json.loads(path.read_text(encoding="utf-8"))
    return models.get("answer_model"), models.get("answer_revision")


def run_rewrite(
    source: str | Path, config: RewriteConfig, out: Path, engine: str = "local"
) -> dict:
    """Rewrite `source`'s rows into `out`, on `engine`. Without an answer model in `config`,
    a curation folder's own answer model guards the rewrites."""
    rows = read_rows(source)
    missing = {"id", "conversations"} - set(rows.column_names)
    if missing:
        raise Align2Error(f"{source} has no {', '.join(sorted(missing))} column(s)")
    if config.answer_model is None:
        model, revision = curation_answer_model(source)
        config = replace(config, answer_model=model, answer_revision=revision)
    out = Path(out)
    rewritten, report = rewrite_dataset(rows, config, out / WORK_FOLDER, engine_named(engine))
    write_parquet(rewritten, out / CURATED_FILE)
    write_json(report, out / REPORT_FILE)
    return report
