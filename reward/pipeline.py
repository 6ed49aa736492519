"""Annotations -> pairs -> trained model -> held-out evaluation -> enriched model card."""

from __future__ import annotations

import json
from pathlib import Path

from align2.cards.model_card import write_reward_model_card
from align2.models.backbones import load_reward_model
from align2.reward.annotations import PairingConfig, preference_pairs
from align2.reward.evaluate import evaluate_pairs
from align2.reward.train import METADATA_FILE, RewardTrainingConfig, train_reward_model

EVAL_FILE = "eval.json"


def evaluate_model(
    model_dir: Path, annotations: Path, image_folder: Path, *, trust_remote_code: bool = False
) -> dict:
    backbone = load_reward_model(model_dir, trust_remote_code=trust_remote_code)
    kind = json.loads((Path(model_dir) / METADATA_FILE).read_text())["kind"]
    # No augmentation: held-out pairs are the annotators' own comparisons.
    pairs = preference_pairs(
        annotations, image_folder=image_folder, config=PairingConfig(augment_p=0.0), kind=kind
    )
    return {"annotations": str(annotations), **evaluate_pairs(backbone, pairs)}


def train_and_evaluate(
    config: RewardTrainingConfig,
    annotations: Path,
    image_folder: Path,
    out: Path,
    *,
    eval_annotations: Path | None = None,
    eval_image_folder: Path | None = None,
    augment_p: float = 0.25,
) -> tuple[Path, dict | None]:
    pairs = preference_pairs(
        annotations,
        image_folder=image_folder,
        config=PairingConfig(augment_p=augment_p, seed=config.seed),
        kind=config.kind,
    )
    model_dir = train_reward_model(pairs, config, out, provenance={"annotations": str(annotations)})
    evaluation = None
    if eval_annotations is not None:
        evaluation = evaluate_model(
            model_dir,
            eval_annotations,
            eval_image_folder,
            trust_remote_code=config.trust_remote_code,
        )
        (model_dir / EVAL_FILE).write_text(json.dumps(evaluation, indent=2) + "\n")
    write_reward_model_card(model_dir, evaluation)
    return model_dir, evaluation
