"""Progress bars. On the command line each stage's pass over the rows shows one bar, and the
`datasets` bookkeeping around it (flattening, filtering, casting, writing Parquet) none:
the CLI calls `quiet_bookkeeping`, and stage maps run inside `stage_bar`. Library users
keep `datasets`' own settings."""

from __future__ import annotations

from contextlib import contextmanager

import datasets

_silenced = False  # whether the CLI turned datasets' bars off


def quiet_bookkeeping() -> None:
    global _silenced
    datasets.disable_progress_bars()  # not the Hub's: downloads keep theirs
    _silenced = True


@contextmanager
def stage_bar():
    """`datasets`' bar on for one stage's map, where the CLI silenced the bookkeeping."""
    if not _silenced:
        yield
        return
    datasets.enable_progress_bars()
    try:
        yield
    finally:
        datasets.disable_progress_bars()
