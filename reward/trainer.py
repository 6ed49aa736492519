"""TRL's RewardTrainer, taught to carry images. Nothing else is overridden: TRL's loss
(Bradley-Terry, optional margin, center_rewards_coefficient), metrics, checkpointing and
model card stay as they are."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Image
from PIL.Image import Image as PILImage
from transformers import TrainerCallback
from trl import RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference


def decoded(image: dict) -> PILImage:
    """A pair's image, decoded per batch (`prepare_pairs` leaves the column undecoded)."""
    return Image().decode_example(image)


@dataclass
class VisionPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator plus `pixel_values`: one image per pair, since chosen and
    rejected share it (the model repeats the encoded image for both halves of the batch)."""

    image_processor: Callable[[list], Any] | None = None

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        batch["pixel_values"] = self.image_processor([decoded(e["image"]) for e in examples])
        return batch


@dataclass
class ProcessorPreferenceCollator:
    """A Hub VLM's batch, in TRL's layout (the B chosen sequences, then the B rejected): the
    processor encodes each rendered text with its pair's image (expanded image tokens, pixel
    values, token types where the model needs them), the same call that scores them later."""

    encode: Callable[[list[str], list], Any]

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        texts = [e["chosen"] for e in examples] + [e["rejected"] for e in examples]
        batch = dict(self.encode(texts, [decoded(e["image"]) for e in examples] * 2))
        if "margin" in examples[0]:
            batch["margin"] = torch.tensor([e["margin"] for e in examples], dtype=torch.float)
        return batch


class CenteringSchedule(TrainerCallback):
    """Changes TRL's `center_rewards_coefficient` at the given optimiser steps: TRL's loss
    reads it from the training arguments on every step."""

    def __init__(self, initial: float | None, changes: tuple[tuple[int, float], ...]):
        self.initial = initial
        self.changes = sorted(changes)

    def on_step_begin(self, args, state, control, **kwargs):
        coefficient = self.initial
        for step, value in self.changes:
            if state.global_step >= step:
                coefficient = value
        args.center_rewards_coefficient = coefficient


class VisionRewardTrainer(RewardTrainer):
    """RewardTrainer whose datasets keep their `image` column (and for Hub VLMs the rendered
    text) for the collator."""

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            columns = ["chosen_ids", "rejected_ids", "margin", "image", "chosen", "rejected"]
            self._signature_columns = columns
