"""The scale-out engine: the same scoring on Ray Data. Canonical rows go out as Parquet
shards (images embedded), an actor pool scores them with `map_batches` (one model per actor,
a GPU each when there are GPUs), scores come back keyed by id and join the rows in their
original order, so selection runs globally and exactly as with the local engine.

Ray is optional: `pip install 'align2[ray]'`.
"""

from __future__ import annotations

import math
from pathlib import Path

import datasets
import pyarrow as pa
import torch
from datasets.table import InMemoryTable

from align2.builders.score import SCORE_FEATURES, ConversationScorer, ScoringConfig
from align2.data.output import write_parquet
from align2.errors import Align2Error

SHARD_ROWS = 4096


class _RayScorer:
    """A Ray actor: one model, batches of Parquet rows in, id + score columns out."""

    def __init__(self, config: ScoringConfig, features: datasets.Features):
        self.scorer = ConversationScorer(config)
        self.features = features

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pydict()
        rows["image"] = [self.features["image"].decode_example(x) for x in rows["image"]]
        out = {"id": rows["id"], **self.scorer(rows)}
        features = {"id": self.features["id"], **SCORE_FEATURES}
        if "conversations" in out:  # a chosen candidate replaced an answer
            features["conversations"] = self.features["conversations"]
        return pa.Table.from_pydict(out, schema=datasets.Features(features).arrow_schema)


def score_with_ray(
    dataset: datasets.Dataset,
    config: ScoringConfig,
    work_dir: str | Path,
) -> datasets.Dataset:
    """`dataset` with the score columns, computed on Ray (a local instance if none runs)."""
    try:
        import ray
    except ImportError:
        raise Align2Error(
            "the ray engine needs Ray Data: pip install 'align2[ray]' (or --engine local)"
        ) from None
    work_dir = Path(work_dir)
    shards = work_dir / "ray-input"
    step = SHARD_ROWS
    for i in range(math.ceil(len(dataset) / step)):
        rows = dataset.select(range(i * step, min(len(dataset), (i + 1) * step)))
        write_parquet(rows, shards / f"rows-{i:05d}.parquet")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    gpus = torch.cuda.device_count()
    scored = ray.data.read_parquet(str(shards)).map_batches(
        _RayScorer,
        fn_constructor_args=(config, dataset.features),
        batch_size=config.window,
        batch_format="pyarrow",
        concurrency=max(1, gpus),
        num_gpus=1 if gpus else None,
    )
    table = pa.concat_tables(scored.iter_batches(batch_format="pyarrow", batch_size=None))
    position = {row_id: i for i, row_id in enumerate(table.column("id").to_pylist())}
    order = [position[row_id] for row_id in dataset["id"]]  # scores keyed by id
    table = table.take(order)
    base = dataset.flatten_indices().data.table
    if "conversations" in table.column_names:
        base = base.set_column(
            base.schema.get_field_index("conversations"),
            "conversations",
            table.column("conversations"),
        )
    for name in SCORE_FEATURES:
        base = base.append_column(name, table.column(name))
    features = datasets.Features({**dataset.features, **SCORE_FEATURES})
    return datasets.Dataset(InMemoryTable(base), info=datasets.DatasetInfo(features=features))
