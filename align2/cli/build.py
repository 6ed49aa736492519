"""`align2 build RECIPE`: run a recipe end to end and publish a versioned release;
`align2 checkout NAME vX.Y.Z`: a working copy of an older release."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from align2.cli.engine import EngineName

WORK_DIR = Path("build") / "align2-work"


def build_command(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    target: Annotated[
        str | None, typer.Option(help="local:DIR (default: the recipe's target) or hub:ORG/NAME")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Release version X.Y.Z (default: bump the latest patch).")
    ] = None,
    engine: EngineName = "local",
) -> None:
    """Curate, rewrite and publish as the recipe says."""
    from align2.builders.recipe import load_recipe
    from align2.publish.release import build_release, recipe_yaml
    from align2.publish.targets import parse_target

    spec = load_recipe(recipe, version=version)  # the recipe's rules for the command's version
    publish_to = parse_target(target or spec.target, Path.cwd())
    command = shlex.join(["align2", "build", *sys.argv[2:]])
    result = build_release(
        spec,
        recipe_yaml(spec),
        target=publish_to,
        work_root=WORK_DIR,
        command=command,
        engine=engine,
    )
    typer.echo(result.summary)
    typer.echo(result.message)
    typer.echo("load it with:\n" + publish_to.describe(spec.name))


def checkout_command(
    name: Annotated[str, typer.Argument(help="Dataset name in the local hub.")],
    version: Annotated[str, typer.Argument(help="Version tag, e.g. v0.1.0.")],
    hub: Annotated[Path, typer.Option(help="Local hub folder.")] = Path("hub"),
    out: Annotated[
        Path | None, typer.Option(help="Where to put it (default NAME-VERSION).")
    ] = None,
) -> None:
    """A working copy of an older release, loadable with datasets.load_dataset(folder)."""
    from align2.publish.targets import LocalHub

    folder = LocalHub(hub).checkout(name, version, out or Path(f"{name}-{version}"))
    typer.echo(f"{name} {version} is in {folder}")
