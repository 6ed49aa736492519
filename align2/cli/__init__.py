"""The `align2` command. It only parses arguments and calls the library."""

from __future__ import annotations

import typer

from align2 import __version__
from align2.cli import annotate, build, curate, demo, evaluate, reward, rewrite, validate
from align2.errors import Align2Error
from align2.progress import quiet_bookkeeping

app = typer.Typer(
    name="align2",
    help="Curate multimodal instruction data and publish it as versioned datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(demo.app, name="demo")
app.add_typer(reward.app, name="reward")
app.add_typer(annotate.app, name="annotate")
app.command("validate")(validate.validate_command)
app.command("curate")(curate.curate_command)
app.command("rewrite")(rewrite.rewrite_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("build")(build.build_command)
app.command("checkout")(build.checkout_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"align2 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True),
) -> None:
    """align2: less, better data for vision-language models."""


def main() -> None:
    quiet_bookkeeping()
    try:
        app()
    except Align2Error as err:
        typer.echo(f"error: {err}", err=True)
        raise SystemExit(2) from None
