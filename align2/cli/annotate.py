"""`align2 annotate ...`: candidates for people to score, and their scores as the seed's
annotation files that `align2 reward train` reads."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated

import typer

from align2.cli import sources

app = typer.Typer(help="Human preference annotation.", no_args_is_help=True)


class Strategy(str, enum.Enum):
    random = "random"
    uncertain = "uncertain"


@app.command("prepare")
def prepare_command(
    out: Annotated[Path, typer.Option(help="A new annotation folder.")],
    llava_json: sources.LlavaJson = None,
    image_folder: sources.ImageFolder = None,
    dataset: sources.Dataset = None,
    split: sources.Split = "train",
    revision: sources.Revision = None,
    size: Annotated[int | None, typer.Option(help="Rows to annotate (default: all).")] = None,
    candidates: Annotated[int, typer.Option(help="Candidates per item.")] = 7,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same folder.")] = 0,
    generator: Annotated[
        str | None,
        typer.Option(help="A causal LM that writes candidate variants (Hub id, folder, smollm2)."),
    ] = None,
    strategy: Annotated[
        Strategy, typer.Option(help="Which rows: random, or those --model is least sure of.")
    ] = Strategy.random,
    model: Annotated[
        Path | None, typer.Option(help="--strategy uncertain: the current reward model.")
    ] = None,
) -> None:
    """Draw rows and write their question and answer candidates, origins kept apart."""
    from align2.data.sources import load_canonical
    from align2.data.validate import Quarantine, ValidationConfig
    from align2.reward.annotate import prepare
    from align2.reward.candidates import GeneratorConfig

    if (strategy == Strategy.uncertain) != (model is not None) or (model and size is None):
        raise typer.BadParameter("--strategy uncertain needs --model and --size (and only it)")
    pool = sources.source_from_options(
        llava_json, image_folder, dataset, split, revision, False
    ).sources()
    quarantine = Quarantine()
    rows = load_canonical(pool, ValidationConfig(), quarantine)
    if size is not None and not 0 < size <= len(rows):
        raise typer.BadParameter(f"between 1 and the {len(rows)} valid rows", param_hint="--size")
    images = [image["bytes"] or Path(image["path"]).read_bytes() for image in _images(rows)]
    items = prepare(
        list(rows),
        images,
        out,
        size=size,
        candidates=candidates,
        seed=seed,
        generator=GeneratorConfig(generator, seed=seed) if generator else None,
        least_sure_of=model,
    )
    typer.echo(f"wrote {items} items to {out} ({quarantine.ledger.n_quarantined} rows quarantined)")


def _images(rows):
    import datasets

    return rows.cast_column("image", datasets.Image(decode=False))["image"]


@app.command("serve")
def serve_command(
    folder: Annotated[Path, typer.Argument(help="The annotation folder.")],
    annotator: Annotated[str, typer.Option(help="Whose scores these are (their own file).")],
    port: Annotated[int, typer.Option(help="Local port.")] = 7860,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    sync_to: Annotated[
        str | None, typer.Option(help="A Hub dataset repo (ORG/NAME) the scores are committed to.")
    ] = None,
) -> None:
    """Score the folder's items in the browser (Gradio), keyboard first."""
    from align2.errors import Align2Error

    try:
        from align2.reward.annotation_app import main
    except ImportError:
        raise Align2Error(
            "the scoring app needs gradio, which needs pillow < 13 where align2 pins 13: "
            "`make app-env`, then `.venv-app/bin/python -m align2.reward.annotation_app "
            f"{folder} --annotator NAME`"
        ) from None
    sync = ["--sync-to", sync_to] if sync_to else []
    main([str(folder), "--annotator", annotator, "--port", str(port), "--host", host, *sync])


@app.command("export")
def export_command(
    folder: Annotated[Path, typer.Argument(help="The annotation folder.")],
    out: Annotated[Path, typer.Option(help="Where the seed-format files go.")],
) -> None:
    """Every annotator's scores as questions.json and answers.json (the mean where several
    scored an item), and agreement.json."""
    from align2.reward.annotate import export

    report = export(folder, out)
    typer.echo(json.dumps({k: report[k] for k in ("exported", "krippendorff_alpha")}))
    typer.echo(f"outputs: {out}")


@app.command("push")
def push_command(
    folder: Annotated[Path, typer.Argument(help="The annotation folder.")],
    target: Annotated[str, typer.Argument(help="hub:ORG/NAME, or local:DIR (a local hub).")],
    name: Annotated[
        str | None, typer.Option(help="local: the dataset's name (default: the folder's).")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="X.Y.Z (default: the latest's patch + 1).")
    ] = None,
    license: Annotated[str, typer.Option(help="A Hub license identifier.")] = "other",
) -> None:
    """Publish the annotations as a versioned dataset (rows, seed files, every annotator's
    file, agreement, a card)."""
    from align2.publish.annotations import push_annotations
    from align2.publish.targets import parse_target

    destination = parse_target(target, Path.cwd())
    dataset = target.rsplit("/", 1)[-1] if target.startswith("hub:") else name or folder.name
    result = push_annotations(folder, destination, dataset, version=version, license=license)
    typer.echo(result.message)


@app.command("space")
def space_command(
    folder: Annotated[Path, typer.Argument(help="The annotation folder.")],
    out: Annotated[Path, typer.Option(help="A new folder: the Space's files.")],
) -> None:
    """A folder that runs the scoring app as a Hugging Face Space (upload it as is)."""
    from align2.reward.space_folder import write_space

    write_space(folder, out)
    typer.echo(
        f"wrote the Space to {out}; deploy it with: hf upload ORG/NAME {out} --repo-type space"
    )
