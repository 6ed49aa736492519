"""`align2 demo ...`: the embedded easy-VQA demo data."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Build the embedded easy-VQA demo data.", no_args_is_help=True)


class Split(str, Enum):
    train = "train"
    test = "test"


@app.command("pool")
def pool(
    out: Annotated[Path, typer.Option(help="Output folder (LLaVA JSON, images/, truth.jsonl).")],
    split: Annotated[Split, typer.Option(help="easy-VQA split.")] = Split.train,
    size: Annotated[int | None, typer.Option(help="Rows (one per image); default all.")] = None,
    defect_rate: Annotated[float, typer.Option(help="Share of rows with a defect.")] = 0.3,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
) -> None:
    """Write a LLaVA-style machine-generated pool with controlled defects."""
    from align2.demo.pool import DemoPoolConfig, build_demo_pool, write_demo_pool

    try:
        config = DemoPoolConfig(split=split.value, size=size, defect_rate=defect_rate, seed=seed)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    rows = build_demo_pool(config)
    path = write_demo_pool(rows, out)
    defective = sum(bool(r["defects"]) for r in rows)
    typer.echo(f"wrote {len(rows)} rows ({defective} with an injected defect) to {path}")


@app.command("annotations")
def annotations(
    out: Annotated[
        Path, typer.Option(help="Output folder (questions.json, answers.json, images/).")
    ],
    split: Annotated[Split, typer.Option(help="easy-VQA split.")] = Split.train,
    size: Annotated[int | None, typer.Option(help="Images; default all.")] = None,
    questions_per_image: Annotated[int, typer.Option(help="Answer items per image.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
) -> None:
    """Write demo preference annotations in the seed's format (stand-ins for human labels)."""
    from align2.demo.annotations import DemoAnnotationConfig, write_demo_annotations

    config = DemoAnnotationConfig(
        split=split.value, size=size, questions_per_image=questions_per_image, seed=seed
    )
    questions, answers = write_demo_annotations(config, out)
    typer.echo(f"wrote {questions} and {answers}")
