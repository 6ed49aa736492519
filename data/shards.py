"""Map a stage over a dataset in shards, each its own `datasets` cache file: a killed run
resumes at the first unfinished shard, and the result is identical to an uninterrupted
run. Shards hold only the columns the stage adds (small files: memory stays flat as pools
grow)."""

from __future__ import annotations

import math
from pathlib import Path

import datasets
from datasets.fingerprint import Hasher
from tqdm.auto import tqdm

from align2.progress import stage_bar


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
    **map_options,
) -> datasets.Dataset:
    """The columns `function` adds to `dataset` (in row order). `key` names what the output
    depends on besides the rows (models, prompts, settings that change results); `name`
    prefixes the cache files and the progress bars."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    shards = range(math.ceil(len(dataset) / rows_per_shard))
    for shard in tqdm(shards, desc=f"{name} shards", disable=len(shards) < 2):
        rows = range(shard * rows_per_shard, min(len(dataset), (shard + 1) * rows_per_shard))
        fingerprint = Hasher.hash([dataset._fingerprint, rows.start, rows.stop, key])
        with stage_bar():
            part = dataset.select(rows).map(
                function,
                batched=True,
                batch_size=batch_size,
                features=features,
                remove_columns=dataset.column_names,
                cache_file_name=str(cache_dir / f"{name}-{fingerprint}.arrow"),
                new_fingerprint=fingerprint,
                desc=f"{name} rows {rows.start}-{rows.stop}",
                **map_options,
            )
        parts.append(part)
    if not parts:
        return datasets.Dataset.from_dict({n: [] for n in features}, features=features)
    return datasets.concatenate_datasets(parts)
