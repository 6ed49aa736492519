"""The source options `align2 validate` and `align2 curate` share: they build the recipe's
`source:` section, so a command line and a recipe name a source the same way."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

LlavaJson = Annotated[
    list[Path] | None,
    typer.Option(
        help="LLaVA .json (a list) or .jsonl file; repeat it for several (each row's type "
        "comes from its own file's name)."
    ),
]
ImageFolder = Annotated[
    Path | None, typer.Option(help="Folder that the rows' image paths are relative to.")
]
Dataset = Annotated[
    str | None,
    typer.Option(help="A `datasets` dataset instead: Hub id, data folder or save_to_disk folder."),
]
Split = Annotated[str, typer.Option(help="--dataset: the split to read.")]
Revision = Annotated[str | None, typer.Option(help="--dataset: a Hub branch, tag or commit.")]
Streaming = Annotated[bool, typer.Option(help="--dataset: read it as a stream.")]


class IdRule(str, Enum):
    derive = "derive"
    strict = "strict"


UniqueIds = Annotated[
    IdRule,
    typer.Option(
        help="derive: a repeated id (LLaVA's image ids) gets a derived key ID-1, ID-2, ...; "
        "strict: it is quarantined."
    ),
]


def source_from_options(
    llava_json: list[Path] | None,
    image_folder: Path | None,
    dataset: str | None,
    split: str = "train",
    revision: str | None = None,
    streaming: bool = False,
):
    """A recipe's `source:` section from the options, validated as a recipe's would be
    (`.sources()` gives its readers)."""
    from pydantic import ValidationError

    from align2.builders.recipe import Source
    from align2.errors import Align2Error

    section: dict = {}
    if llava_json:
        if image_folder is None:
            raise typer.BadParameter(
                "--llava-json needs --image-folder", param_hint="--image-folder"
            )
        section["llava"] = {"llava_json": llava_json, "image_folder": image_folder}
    if dataset is not None:
        section["dataset"] = {
            "path": dataset,
            "split": split,
            "revision": revision,
            "streaming": streaming,
            "image_folder": image_folder,
        }
    try:
        source = Source.model_validate(section)
    except ValidationError as err:
        message = err.errors()[0]["msg"].removeprefix("Value error, ")
        for recipe_name, option in (("`demo_pool`, ", ""), ("`llava`", "--llava-json")):
            message = message.replace(recipe_name, option)
        raise Align2Error(message.replace("`dataset`", "--dataset")) from None
    return source
