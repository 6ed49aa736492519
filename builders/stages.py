"""One contract for curation stages, and the local runner.

A stage is a name, a frozen config, an identity (what else its output depends on: model
weights, score files, a format version) and one function over the rows still in play that
returns their new columns or a drop reason per row. Its signature is a hash of the config
(less the fields that change speed, not output), the identity and the signature of its
input, so changing one stage's config changes its signature and every later one's and
nothing before it. The runner owns caching (each stage's output under its signature, written
atomically), timing, and the bookkeeping of which rows each stage dropped."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from align2.data.output import DROPPED_DECISION, KEPT_DECISION

DECISION_FEATURES = {
    "decision": datasets.Value("string"),
    "reason": datasets.Value("string"),
    "duplicate_of": datasets.Value("string"),
}
SPEED_FIELDS = frozenset({"batch_size", "window", "checkpoint_rows", "num_proc"})
STAGE_FORMAT = 1  # bump when a stored stage output's layout changes


@dataclass
class StageOutput:
    rows: datasets.Dataset | None = None  # the input rows with the stage's columns; None: same
    reasons: list[str | None] | None = None  # per input row: why it is dropped (None: kept)
    duplicate_of: list[str | None] | None = None  # per input row, for dedup's drops
    report: dict | None = None  # what the stage says of itself (selection.json, ...)


@dataclass(frozen=True)
class StageInput:
    positions: list[int]  # each input row's position in the pool
    pool_ids: list[str]  # every pool row's id
    reports: dict[str, dict]  # earlier stages' reports, by name


@dataclass(frozen=True)
class Stage:
    name: str
    config: Any  # a frozen dataclass
    function: Callable[[datasets.Dataset, StageInput], StageOutput]
    identity: Any = None  # what else the output depends on (weights, files, formats)
    writes: tuple[str, ...] = ()  # input columns the stage rewrites (besides new ones)

    def signature(self, upstream: str) -> str:
        settings = {
            k: v for k, v in dataclasses.asdict(self.config).items() if k not in SPEED_FIELDS
        }
        return Hasher.hash([STAGE_FORMAT, self.name, settings, self.identity, upstream])


@dataclass
class StagesResult:
    rows: datasets.Dataset  # every pool row in pool order, as the last stage it reached left
    # it, with its decision, reason and the id it duplicates
    reasons: list[str | None]
    duplicate_of: list[str | None]
    reports: dict[str, dict]
    runs: dict[str, dict] = field(default_factory=dict)  # name -> computed/cached, seconds


def run_stages(pool: datasets.Dataset, stages: list[Stage], cache_dir: Path) -> StagesResult:
    """Run `stages` in order over `pool`; a stage's output is read back from `cache_dir` when
    its signature is there."""
    live, positions = pool, list(range(len(pool)))
    reasons: list[str | None] = [None] * len(pool)
    duplicate_of: list[str | None] = [None] * len(pool)
    finished: list[tuple[list[int], datasets.Dataset]] = []  # dropped rows, as they left
    reports: dict[str, dict] = {}
    runs: dict[str, dict] = {}
    signature, pool_ids = pool._fingerprint, pool["id"]
    for stage in stages:
        signature = stage.signature(signature)
        start = time.perf_counter()
        folder = Path(cache_dir) / f"{stage.name}-{signature}"
        cached = folder.is_dir()
        if cached:
            out = _load(folder, live)
        else:
            out = stage.function(live, StageInput(positions, pool_ids, reports))
            _store(folder, out, live, stage.writes)
        runs[stage.name] = {
            "status": "cached" if cached else "computed",
            "seconds": round(time.perf_counter() - start, 3),
            "rows_in": len(live),
        }
        live = out.rows if out.rows is not None else live
        if out.report is not None:
            reports[stage.name] = out.report
        if out.reasons is not None:
            kept = [i for i, reason in enumerate(out.reasons) if reason is None]
            dropped = [i for i, reason in enumerate(out.reasons) if reason is not None]
            for i in dropped:
                reasons[positions[i]] = out.reasons[i]
                if out.duplicate_of is not None:
                    duplicate_of[positions[i]] = out.duplicate_of[i]
            if dropped:
                finished.append(([positions[i] for i in dropped], live.select(dropped)))
            live, positions = live.select(kept), [positions[i] for i in kept]
    decisions = {
        "decision": [KEPT_DECISION if r is None else DROPPED_DECISION for r in reasons],
        "reason": reasons,
        "duplicate_of": duplicate_of,
    }
    rows = _in_pool_order([*finished, (positions, live)], live.features, decisions)
    return StagesResult(rows, reasons, duplicate_of, reports, runs)


def _in_pool_order(pieces, features: datasets.Features, decisions: dict) -> datasets.Dataset:
    """The pieces' rows in pool order, each with every column (null where its stage had not
    added it yet) and its decision columns (given in pool order). The columns join before
    the rows are put in order, so no column is added to a reordered (copied) table."""
    parts, order = [], []
    for positions, rows in pieces:
        for name, feature in features.items():
            if name not in rows.column_names:
                rows = rows.add_column(name, [None] * len(rows), feature=feature)
        parts.append(rows.select_columns(list(features)).cast(features))
        order += positions
    table = datasets.concatenate_datasets(parts)
    for name, values in decisions.items():
        table = table.add_column(name, [values[p] for p in order], feature=DECISION_FEATURES[name])
    return table.select(np.argsort(order, kind="stable"))


def _store(folder: Path, out: StageOutput, live: datasets.Dataset, writes) -> None:
    """The stage's new columns and decisions under its signature, all or nothing."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        meta = {"reasons": out.reasons, "duplicate_of": out.duplicate_of, "report": out.report}
        if out.rows is not None:
            added = [c for c in out.rows.column_names if c not in live.column_names]
            stored = [*added, *(c for c in writes if c in out.rows.column_names)]
            meta["columns"], meta["stored"] = out.rows.column_names, stored
            out.rows.select_columns(stored).flatten_indices().save_to_disk(str(work / "rows"))
        (work / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        work.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _load(folder: Path, live: datasets.Dataset) -> StageOutput:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    rows = None
    if "columns" in meta:
        stored = datasets.load_from_disk(str(folder / "rows"))
        base = live.remove_columns([c for c in meta["stored"] if c in live.column_names])
        rows = datasets.concatenate_datasets([base.flatten_indices(), stored], axis=1)
        rows = rows.select_columns(meta["columns"])
    return StageOutput(rows, meta["reasons"], meta["duplicate_of"], meta["report"])


def runs_table(runs: dict[str, dict]) -> str:
    """Each stage's rows in, seconds and whether it ran or came from the cache."""
    lines = [f"{'stage':<14}{'rows in':>10}{'seconds':>10}  status"]
    for name, run in runs.items():
        lines.append(f"{name:<14}{run['rows_in']:>10}{run['seconds']:>10.1f}  {run['status']}")
    return "\n".join(lines)
