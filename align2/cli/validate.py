"""`align2 validate`: check a LLaVA file and its images; write a report and a quarantine file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def validate_command(
    llava_json: Annotated[Path, typer.Option(help="LLaVA .json (a list) or .jsonl file.")],
    image_folder: Annotated[Path, typer.Option(help="Folder that image paths are relative to.")],
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")],
    quarantine: Annotated[
        Path | None,
        typer.Option(help="Quarantine file (JSON Lines); default REPORT.quarantine.jsonl"),
    ] = None,
    max_image_pixels: Annotated[int, typer.Option(help="Larger images are quarantined.")] = 4096
    * 4096,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any row is quarantined.")] = False,
) -> None:
    """Validate every row; bad rows are quarantined with a reason, never lost."""
    from align2.builders.sources import LlavaJsonSource, validate_source
    from align2.builders.validate import ValidationConfig

    config = ValidationConfig(image_folder=image_folder, max_image_pixels=max_image_pixels)
    quarantine = quarantine or report.with_name(report.stem + ".quarantine.jsonl")
    result = validate_source(LlavaJsonSource(llava_json, image_folder), config, quarantine)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result.report, indent=2) + "\n", encoding="utf-8")
    typer.echo(result.ledger.table())
    typer.echo(f"report: {report}\nquarantine: {quarantine}")
    if strict and result.ledger.n_quarantined:
        raise typer.Exit(1)
