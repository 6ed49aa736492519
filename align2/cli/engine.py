"""The `--engine` option the commands that map over rows share: where the row-wise work
runs (the output is the same on either)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from align2.data.engines import ENGINES

EngineChoice = Enum("EngineChoice", {name: name for name in ENGINES}, type=str)
EngineName = Annotated[
    EngineChoice,
    typer.Option(help="Where row-wise stages run: local (datasets) or ray (Ray Data)."),
]
