"""Map a batch function over a dataset in shards, each shard's new columns its own Arrow
file: a killed run resumes at the first unfinished shard, and the result is identical to an
uninterrupted run. Shards hold only the columns the function adds (small files: memory stays
flat as pools grow).

Where a shard is computed is the engine's business: `LocalEngine` maps with `datasets` in
this process (or `num_proc` processes, one per GPU), the Ray engine
(`builders/ray_engine.py`) on Ray Data. The files, their names and the rule (a shard whose
file exists is done) are the same for every engine, so a run killed on one resumes on the
other."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import datasets
import pyarrow as pa
from datasets.arrow_writer import ArrowWriter
from datasets.fingerprint import Hasher
from tqdm.auto import tqdm

from align2.progress import stage_bar


@dataclass(frozen=True)
class Shard:
    rows: range  # positions in the mapped dataset
    path: Path  # its output file; it exists once the shard is done


class Engine(Protocol):
    name: str

    def compute(self, dataset: datasets.Dataset, function, shards: list[Shard], **options):
        """Write each shard's output file: `function`'s columns for the shard's rows.
        `options`: features, batch_size, desc, with_rank, num_proc."""


class LocalEngine:
    """Shards computed one after another with `datasets.map`; a function that takes a rank
    (`with_rank`) runs in one process per GPU where there are several."""

    name = "local"

    def compute(self, dataset, function, shards, *, features, batch_size, desc, **map_options):
        if map_options.get("with_rank") and _gpu_count() > 1:
            map_options["num_proc"] = _gpu_count()
        for shard in tqdm(shards, desc=f"{desc} shards", disable=len(shards) < 2):
            table = compute_shard(
                dataset.select(shard.rows),
                function,
                features=features,
                batch_size=batch_size,
                fingerprint=shard.path.stem,
                desc=f"{desc} rows {shard.rows.start}-{shard.rows.stop}",
                **map_options,
            )
            write_shard(table, shard.path, features)


def compute_shard(
    rows: datasets.Dataset, function, *, features, batch_size, fingerprint, desc, **map_options
) -> pa.Table:
    """One shard's output columns, batched from its first row: every engine computes a shard
    with this, so its batches (and so its padding, and its floats) are the same on each."""
    with stage_bar():
        part = rows.map(
            function,
            batched=True,
            batch_size=batch_size,
            features=features,
            remove_columns=rows.column_names,
            keep_in_memory=True,  # the engine writes the shard's file, atomically
            new_fingerprint=fingerprint,
            desc=desc,
            **map_options,
        )
    return part.with_format("arrow")[:]


LOCAL = LocalEngine()


def _gpu_count() -> int:
    import torch  # only the functions that take a rank load models

    return torch.cuda.device_count()


def write_shard(table: pa.Table, path: Path, features: datasets.Features) -> None:
    """A shard's columns as an Arrow file `datasets` memory-maps; all or nothing."""
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(handle)
    try:
        writer = ArrowWriter(features=features, path=partial)
        writer.write_table(table)
        writer.finalize()
        writer.close()
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


def map_in_shards(
    dataset: datasets.Dataset,
    function,
    *,
    features: datasets.Features,
    key: str,
    cache_dir: str | Path,
    name: str,
    rows_per_shard: int,
    batch_size: int,
    engine: Engine = LOCAL,
    **map_options,
) -> datasets.Dataset:
    """The columns `function` adds to `dataset` (in row order). `key` names what the output
    depends on besides the rows (models, prompts, settings that change results); `name`
    prefixes the cache files and the progress bars."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    for start in range(0, len(dataset), rows_per_shard):
        rows = range(start, min(len(dataset), start + rows_per_shard))
        fingerprint = Hasher.hash([dataset._fingerprint, rows.start, rows.stop, key])
        shards.append(Shard(rows, cache_dir / f"{name}-{fingerprint}.arrow"))
    if not shards:
        return datasets.Dataset.from_dict({n: [] for n in features}, features=features)
    missing = [shard for shard in shards if not shard.path.exists()]
    if missing:
        options = {"features": features, "batch_size": batch_size, "desc": name, **map_options}
        engine.compute(dataset, function, missing, **options)
    return datasets.concatenate_datasets(
        [datasets.Dataset.from_file(str(shard.path)) for shard in shards]
    )


def with_columns(
    dataset: datasets.Dataset, added: datasets.Dataset, cache_dir: str | Path
) -> datasets.Dataset:
    """`dataset` with `added`'s columns (same rows, same order), a column of the same name
    replaced where it stays. A selection is made contiguous first (a column-wise join needs
    it), into a cache file named by its fingerprint."""
    order = [*dataset.column_names, *(c for c in added.column_names if c not in dataset.features)]
    rows = dataset.remove_columns([c for c in added.column_names if c in dataset.features])
    if rows._indices is not None:
        rows = rows.flatten_indices(
            cache_file_name=str(Path(cache_dir) / f"rows-{rows._fingerprint}.arrow")
        )
    return datasets.concatenate_datasets([rows, added], axis=1).select_columns(order)
