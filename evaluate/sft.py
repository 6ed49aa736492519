"""Supervised fine-tuning of a VLM on chat `messages` and `images`, with TRL's `SFTTrainer`.

The loss is read on the assistant's turns only (`assistant_only_loss`: the chat template
marks them), as LLaVA's instruction tuning does. Every run of a comparison trains for the
same number of steps from the same weights, so the data is all that differs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SFTSettings:
    max_steps: int = 400
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 20
    max_length: int = 512  # tokens, the image's included
    seed: int = 0


def messages_dataset(ids: list[str], conversations: list[list[dict]], images: list):
    """LLaVA-style rows as the `messages` export holds them (one image each)."""
    import datasets

    from align2.data.exports import MESSAGE_FEATURES, to_messages

    def image(value):
        return {"path": str(value), "bytes": None} if isinstance(value, (str, Path)) else value

    return datasets.Dataset.from_dict(
        {
            "id": ids,
            "messages": [to_messages(c) for c in conversations],
            "images": [[image(i)] for i in images],
        },
        features=MESSAGE_FEATURES,
    )


def train_sft(dataset, base_model: str | Path, settings: SFTSettings, out: Path) -> dict:
    """Train `base_model` (a folder or Hub id of an image-text-to-text model with a chat
    template) on `dataset` (`messages` and `images` columns); save it with its processor to
    `out`. Returns the training seconds and the first and last logged losses."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from align2.reward.train import keep_freed_memory

    keep_freed_memory()
    torch.manual_seed(settings.seed)
    model = AutoModelForImageTextToText.from_pretrained(base_model, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(base_model)
    args = SFTConfig(
        output_dir=str(out),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=settings.warmup_steps,
        max_length=settings.max_length,
        assistant_only_loss=True,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=max(1, settings.max_steps // 20),
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        log_level="warning",
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    trainer.remove_callback(PrinterCallback)  # per-step logs on stdout: callers report instead
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    trainer.model.save_pretrained(out)  # not `save_model`: it pickles the training args
    processor.save_pretrained(out)
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    return {"train_seconds": round(seconds, 1), "loss_first": losses[0], "loss_last": losses[-1]}
