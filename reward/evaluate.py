"""Pairwise accuracy and mean margin: overall, per `subset` and per `kind`."""

from __future__ import annotations

from collections import defaultdict

import datasets
import numpy as np

from align2.models.backbones import Backbone
from align2.models.scoring import score_texts
from align2.reward.templates import render_pairs


def evaluate_pairs(backbone: Backbone, pairs: datasets.Dataset, *, batch_size: int = 64) -> dict:
    kinds = pairs["kind"]
    texts = render_pairs(pairs.select_columns(["kind", "prompt", "chosen", "rejected"]).to_dict())
    chosen, rejected = texts["chosen"], texts["rejected"]
    images = list(pairs["image"]) if backbone.sees_images else None
    both = score_texts(
        backbone,
        chosen + rejected,
        None if images is None else images + images,
        batch_size=batch_size,
    )
    margin = both[: len(chosen)] - both[len(chosen) :]
    groups: dict[str, dict[str, list[int]]] = {
        "subset": defaultdict(list),
        "kind": defaultdict(list),
    }
    for i, (subset, kind) in enumerate(zip(pairs["subset"], kinds, strict=True)):
        groups["subset"][subset].append(i)
        groups["kind"][kind].append(i)

    def summary(index) -> dict:
        m = margin[index]
        return {
            "pairs": int(len(m)),
            "accuracy": float((m > 0).mean()),
            "mean_margin": float(m.mean()),
        }

    return {
        "overall": summary(np.arange(len(margin))),
        "per_kind": {k: summary(v) for k, v in sorted(groups["kind"].items())},
        "per_subset": {k: summary(v) for k, v in sorted(groups["subset"].items())},
    }
