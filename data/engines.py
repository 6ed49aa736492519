"""Engines: where row-wise stages' shards are computed. `local` is `data/shards.py`'s; `ray`,
here, computes them on Ray Data.

The shards left to compute go out as Parquet files (images embedded), one Ray Data row per
shard; an actor pool maps the stage's batch function over them with `map_batches` (one copy
of the function, so one model, per actor; a GPU each when the cluster has GPUs and the stage
uses them), each actor computing a whole shard exactly as the local engine does
(`compute_shard`: the same batches, so the same floats). This process writes each shard's
file as its result arrives. The files and the rule are the local engine's
(`data/shards.py`): a killed run resumes at the shards it had not finished, on either
engine, and dedup's matching and the selection run here on the whole pool.

The Parquet files are read where the actors run: on a cluster of several machines, the work
folder must be on a filesystem they share. Ray is optional: `pip install 'align2[ray]'`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets.table import InMemoryTable
from tqdm.auto import tqdm

from align2.data.output import write_parquet
from align2.data.shards import LOCAL, Engine, Shard, compute_shard, write_shard
from align2.errors import Align2Error

SHARD, ROW = "_align2_shard", "_align2_row"  # which shard a result row belongs to, and where


class _Worker:
    """A Ray actor: whole shards in (their Parquet files), their output columns out."""

    def __init__(self, function, features: datasets.Features, options: dict):
        self.function, self.features, self.options = function, features, options

    def __call__(self, batch: dict) -> pa.Table:
        tables = []
        for shard, path in zip(batch["shard"].tolist(), batch["path"].tolist(), strict=True):
            rows = datasets.Dataset(
                InMemoryTable(pq.read_table(path)),
                info=datasets.DatasetInfo(features=self.features),
            )
            table = compute_shard(rows, self.function, fingerprint=Path(path).stem, **self.options)
            table = table.append_column(SHARD, pa.array([shard] * len(table), pa.int64()))
            tables.append(table.append_column(ROW, pa.array(np.arange(len(table)))))
        return pa.concat_tables(tables)


class RayEngine:
    """Shards computed by `workers` actors (default: one per GPU, or one on a CPU cluster)
    on the Ray instance this process is connected to, or a local one started here."""

    name = "ray"

    def __init__(self, workers: int | None = None):
        self.workers = workers

    def compute(self, dataset, function, shards, *, desc, **options):
        ray = _ray()
        gpus = int(ray.cluster_resources().get("GPU", 0)) if options.get("with_rank") else 0
        options.pop("num_proc", None)  # the local engine's processes; here, the actors
        inputs = Path(tempfile.mkdtemp(prefix=".ray-input-", dir=shards[0].path.parent))
        try:
            items = []
            for i, shard in enumerate(shards):
                path = write_parquet(
                    dataset.select(shard.rows), inputs / f"{shard.path.stem}.parquet"
                )
                items.append({"shard": i, "path": str(path)})
            options["desc"] = desc
            mapped = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                _Worker,
                fn_constructor_args=(function, dataset.features, options),
                batch_size=1,
                concurrency=self.workers or max(1, gpus),
                num_gpus=1 if gpus else None,
            )
            batches = mapped.iter_batches(batch_format="pyarrow", batch_size=None)
            _write_as_completed(batches, shards, options["features"], desc)
        finally:
            shutil.rmtree(inputs, ignore_errors=True)


def _write_as_completed(batches, shards: list[Shard], features, desc: str) -> None:
    """Gather the results (in any order) by shard; each shard's file is written, its rows in
    order, once the last of them has arrived."""
    pending: dict[int, list[pa.Table]] = defaultdict(list)
    arrived = defaultdict(int)
    with tqdm(total=len(shards), desc=f"{desc} shards (ray)") as bar:
        for batch in batches:
            for i in pc.unique(batch[SHARD]).to_pylist():
                part = batch.filter(pc.equal(batch[SHARD], i))
                pending[i].append(part)
                arrived[i] += len(part)
                if arrived[i] == len(shards[i].rows):
                    table = pa.concat_tables(pending.pop(i))
                    table = table.take(np.argsort(table[ROW].to_numpy(), kind="stable"))
                    write_shard(table.drop_columns([SHARD, ROW]), shards[i].path, features)
                    bar.update()
    if pending:
        raise RuntimeError(f"Ray returned part of shards {sorted(pending)}")


def _ray():
    try:
        import ray
    except ImportError:
        raise Align2Error(
            "the ray engine needs Ray Data: pip install 'align2[ray]' (or --engine local)"
        ) from None
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    return ray


ENGINES = ("local", "ray")


def engine_named(name: str) -> Engine:
    """The engine a command line or a library call names."""
    if name not in ENGINES:
        raise Align2Error(f"unknown engine {name!r}; allowed: {', '.join(ENGINES)}")
    return LOCAL if name == "local" else RayEngine()
