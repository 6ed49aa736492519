"""`align2 validate`: check a pool's rows and images; write a report and a quarantine file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from align2.cli import sources


def validate_command(
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")],
    llava_json: sources.LlavaJson = None,
    image_folder: sources.ImageFolder = None,
    dataset: sources.Dataset = None,
    split: sources.Split = "train",
    revision: sources.Revision = None,
    streaming: sources.Streaming = False,
    unique_ids: sources.UniqueIds = sources.IdRule.derive,
    quarantine: Annotated[
        Path | None,
        typer.Option(help="Quarantine file (JSON Lines); default REPORT.quarantine.jsonl"),
    ] = None,
    max_image_pixels: Annotated[int, typer.Option(help="Larger images are quarantined.")] = 4096
    * 4096,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any row is quarantined.")] = False,
) -> None:
    """Validate every row; bad rows are quarantined with a reason, never lost."""
    from align2.data.sources import validate_source
    from align2.data.validate import ValidationConfig

    config = ValidationConfig(max_image_pixels=max_image_pixels, unique_ids=unique_ids.value)
    quarantine = quarantine or report.with_name(report.stem + ".quarantine.jsonl")
    pool = sources.source_from_options(
        llava_json, image_folder, dataset, split, revision, streaming
    ).sources()
    result = validate_source(pool, config, quarantine, num_proc=os.cpu_count() or 1)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result.report, indent=2) + "\n", encoding="utf-8")
    typer.echo(result.ledger.table())
    typer.echo(f"report: {report}\nquarantine: {quarantine}")
    if strict and result.ledger.n_quarantined:
        raise typer.Exit(1)
