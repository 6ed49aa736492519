"""Train a question or answer reward model with TRL.

Text backbones go through `trl.RewardTrainer` as it is (TRL renders nothing: we pass the
seed's templates as plain text). Vision backbones go through `VisionRewardTrainer` with the
image column kept for the collator: `tiny-vlm` with pre-tokenised ids (one image per pair),
Hub VLMs with the rendered text, which their processor encodes with the image per batch.
"""

from __future__ import annotations

import ctypes
import json
import logging
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from trl import RewardConfig, RewardTrainer

from align2.errors import Align2Error
from align2.models.backbones import Backbone, build_backbone
from align2.models.scoring import cut_to_tokens, truncate_ids
from align2.reward.templates import KINDS, render_pairs
from align2.reward.trainer import (
    CenteringSchedule,
    ProcessorPreferenceCollator,
    VisionPreferenceCollator,
    VisionRewardTrainer,
)

METADATA_FILE = "align2_reward.json"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RewardTrainingConfig:
    kind: str  # question | answer: which template the model reads
    backbone: str = "tiny-vlm"
    max_steps: int = 600  # optimiser steps (deterministic, unlike a time budget)
    batch_size: int = 32  # preference pairs per step
    learning_rate: float = (
        3e-4  # 1e-3 collapsed a tiny LLaVA to a text-only bias; tiny-vlm takes it
    )
    warmup_steps: int = 50
    # Curriculum stages, each "pattern|pattern|...[@N]" on the pair's `subset` ("=name"
    # matches exactly, anything else as a prefix; "@N" takes a seeded sample of at most N
    # pairs): stage 1's pairs first, then stage 2's (a stage may repeat), ..., then all pairs
    # shuffled. Empty = one shuffled pass as usual.
    curriculum: tuple[str, ...] = ()
    use_margin: bool = False  # subtract the annotated score gap inside TRL's loss
    center_rewards_coefficient: float | None = None
    # ((step, coefficient), ...): from each optimiser step on, centre with that coefficient
    # instead; before the first, with `center_rewards_coefficient`.
    center_rewards_schedule: tuple[tuple[int, float], ...] = ()
    lora_r: int | None = None  # LoRA rank (alpha = 2r, as the seed's 128/256); None = full
    max_length: int = 256  # tokens per side of a pair, a VLM's image tokens included
    # Longer pairs: False leaves them out (TRL's rule, counted in the metadata); True cuts
    # each side to `max_length`, its beginning kept, as scoring cuts a text to the context.
    truncate: bool = False
    # Overrides of the backbone's config, e.g. (("max_position_embeddings", 256),).
    backbone_config: tuple[tuple[str, int | float | str], ...] = ()
    seed: int = 0
    trust_remote_code: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        steps = [step for step, _ in self.center_rewards_schedule]
        if steps != sorted(set(steps)) or any(step < 0 for step in steps):
            raise ValueError(
                f"center_rewards_schedule's steps must be distinct, ascending and >= 0, got {steps}"
            )


SIDES = ("chosen", "rejected")


def prepare_pairs(
    pairs: datasets.Dataset,
    backbone: Backbone,
    use_margin: bool,
    truncate_to: int | None = None,
) -> datasets.Dataset:
    """Rendered (text) or tokenised-with-image (vision) pairs in the form TRL takes; `subset`
    stays for the curriculum and is dropped by the trainer. With `truncate_to`, each side is
    cut to that many tokens (its beginning kept) and `truncated` marks the pairs that were."""
    rendered = pairs.map(render_pairs, batched=True, desc="rendering templates")
    drop = ["id", "kind", "prompt"] + ([] if use_margin else ["margin"])
    tokenizer = backbone.tokenizer
    if not backbone.sees_images and truncate_to is None:
        return rendered.remove_columns(drop + ["image"])
    if backbone.processor is not None:
        # The collator encodes text and image together; these ids (image tokens expanded)
        # let TRL drop the pairs over `max_length`, and measure what truncation cuts.
        def measure(batch):
            out = {"truncated": [False] * len(batch["image"])}
            for side in SIDES:
                ids = backbone.processor_inputs(batch[side], batch["image"], padding=False)
                ids = ids["input_ids"]
                long = (
                    []
                    if truncate_to is None
                    else [i for i, row in enumerate(ids) if len(row) > truncate_to]
                )
                for i in long:
                    excess = len(ids[i]) - truncate_to
                    batch[side][i] = cut_to_tokens(tokenizer, batch[side][i], excess)
                    out["truncated"][i] = True
                if long:  # encoded again only when something was cut
                    ids = backbone.processor_inputs(batch[side], batch["image"], padding=False)
                    ids = ids["input_ids"]
                out[side], out[side + "_ids"] = batch[side], ids
            return out

        prepared = rendered.map(measure, batched=True, desc="encoding with images")
        prepared = prepared.remove_columns(drop)
    else:

        def tokenize(batch):
            out, truncated = {}, np.zeros(len(batch["chosen"]), dtype=bool)
            for side in SIDES:
                ids = tokenizer(batch[side], add_special_tokens=False)["input_ids"]
                if truncate_to is not None:
                    truncated |= truncate_ids(ids, truncate_to) > 0
                out[side + "_ids"] = ids
            return {**out, "truncated": truncated.tolist()}

        prepared = rendered.map(tokenize, batched=True, desc="tokenizing")
        prepared = prepared.remove_columns(drop + ["chosen", "rejected"])
        if not backbone.sees_images:
            return prepared.remove_columns("image")
    # The collators decode each batch's images, so passes over the set decode none (TRL's
    # length filter reads whole rows: it decoded 40,000 images to compare two lengths).
    return prepared.cast_column("image", datasets.Image(decode=False))


def _matches(subset: str, pattern: str) -> bool:
    return any(
        subset == p[1:] if p.startswith("=") else subset.startswith(p) for p in pattern.split("|")
    )


def _stage(stage: str) -> tuple[str, int | None]:
    """("pattern|pattern", cap) from "pattern|pattern@N"."""
    pattern, _, cap = stage.partition("@")
    if cap and not cap.isdigit():
        raise ValueError(f"curriculum stage {stage!r}: '@' must be followed by a pair count")
    return pattern, int(cap) if cap else None


def curriculum_order(pairs: datasets.Dataset, stages: tuple[str, ...], seed: int):
    """Each stage's pairs (shuffled, capped) in order, then every pair (shuffled); read
    sequentially."""
    rng = np.random.default_rng(seed)
    # Match each distinct subset name once: a hundred names, not 255k rows.
    names, of_row = np.unique(np.asarray(pairs["subset"][:], dtype=object), return_inverse=True)
    order = []
    for stage in stages:
        pattern, cap = _stage(stage)
        named = np.array([_matches(name, pattern) for name in names], dtype=bool)
        matching = rng.permutation(np.flatnonzero(named[of_row]))
        order.append(matching[:cap])
    order.append(rng.permutation(len(pairs)))
    return pairs.select(np.concatenate(order).astype(int))  # an index mapping: no copy


def _peft_config(config: RewardTrainingConfig):
    if config.lora_r is None:
        return None
    try:
        from peft import LoraConfig, TaskType
    except ImportError:
        raise Align2Error(
            f"lora_r={config.lora_r} needs the `peft` package: pip install 'align2[lora]'"
        ) from None

    return LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=config.lora_r,
        lora_alpha=2 * config.lora_r,
        target_modules="all-linear",
        modules_to_save=["score"],
    )


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next step instead of returning it to the OS.

    Its defaults (dynamic mmap threshold, 128 KiB trim threshold) hand each step's tensors
    back and fault the pages in again: 9 million page faults in 300 demo steps on 2 cores,
    1.24x the time (benchmarks/training_allocator.py). Process-wide; elsewhere than glibc,
    nothing changes."""
    if platform.libc_ver()[0] != "glibc":
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    libc = ctypes.CDLL(None)
    libc.mallopt(m_mmap_threshold, 32 * 2**20)  # glibc's largest: bigger blocks stay mmapped
    libc.mallopt(m_trim_threshold, 2**31 - 1)


def train_reward_model(
    pairs: datasets.Dataset,
    config: RewardTrainingConfig,
    output_dir: Path,
    *,
    provenance: dict | None = None,
) -> Path:
    """Train, save (safetensors, tokenizer, TRL's model card, our metadata) and return the dir."""
    # An index mapping from one column read: a row-by-row filter took 10 s over 255k pairs.
    # (`[:]` reads the column as one list; numpy iterating a `Column` took 3 s.)
    pairs = pairs.select(np.flatnonzero(np.asarray(pairs["kind"][:]) == config.kind))
    if len(pairs) == 0:
        raise Align2Error(
            f"no {config.kind} pairs to train on: no {config.kind} item has candidates with "
            "different scores"
        )
    backbone = build_backbone(
        config.backbone,
        seed=config.seed,
        trust_remote_code=config.trust_remote_code,
        **dict(config.backbone_config),
    )
    args = _training_args(config, output_dir)
    train_set, truncated = _training_set(pairs, config, backbone, args)
    trainer = _trainer(backbone, config, args, train_set)
    too_long = _left_out_as_too_long(train_set, trainer, config)
    trainer.train()
    model = trainer.model
    if config.lora_r is not None:
        model = model.merge_and_unload()  # one self-contained safetensors model to score with
    model.save_pretrained(output_dir, safe_serialization=True)
    backbone.save_preprocessing(output_dir)
    trainer.create_model_card(model_name=Path(output_dir).name)
    metadata = {
        "kind": config.kind,
        "training": asdict(config),
        **(provenance or {}),
        "train_pairs": len(pairs),
        "pairs_over_max_length": too_long,  # left out
        "pairs_truncated": truncated,
        "log": [e for e in trainer.state.log_history if "loss" in e],
    }
    (Path(output_dir) / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return Path(output_dir)


def _training_args(config: RewardTrainingConfig, output_dir: Path) -> RewardConfig:
    cuda = torch.cuda.is_available()
    if not cuda:
        keep_freed_memory()
    return RewardConfig(
        output_dir=str(output_dir),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type="cosine",
        max_length=config.max_length,
        center_rewards_coefficient=config.center_rewards_coefficient,
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=False,  # tiny models gain nothing; large ones can turn it on
        save_strategy="no",
        logging_steps=max(1, config.max_steps // 20),
        report_to=[],
        dataloader_num_workers=0,
        train_sampling_strategy="sequential" if config.curriculum else "random",
    )


def _training_set(pairs, config: RewardTrainingConfig, backbone, args: RewardConfig):
    """(the prepared pairs, how many were cut to max_length)."""
    train_set = pairs
    if config.curriculum:
        # Read in order, so training takes exactly the order's first rows: prepare only those
        # (the demo's order lists 288k rows, its 1,240 steps read 40k). Pairs TRL then drops
        # as too long shorten the set, and the last steps read its first rows again.
        train_set = curriculum_order(pairs, config.curriculum, config.seed)
        rows_read = (
            args.max_steps * args.train_batch_size * args.gradient_accumulation_steps
        ) * args.world_size
        train_set = train_set.select(range(min(rows_read, len(train_set))))
    train_set = prepare_pairs(
        train_set, backbone, config.use_margin, config.max_length if config.truncate else None
    ).remove_columns("subset")
    truncated = 0
    if "truncated" in train_set.column_names:
        truncated = int(np.count_nonzero(train_set["truncated"][:]))
        train_set = train_set.remove_columns("truncated")
    if truncated:
        logger.warning(
            "%d of %d training pairs were cut to max_length=%d tokens",
            truncated,
            len(train_set),
            config.max_length,
        )
    return train_set, truncated


def _trainer(backbone, config: RewardTrainingConfig, args: RewardConfig, train_set):
    """TRL's RewardTrainer, or its vision subclass with the collator the backbone reads."""
    if backbone.processor is not None:
        trainer_cls = VisionRewardTrainer
        collator = ProcessorPreferenceCollator(backbone.processor_inputs)
    elif backbone.image_processor is not None:
        trainer_cls = VisionRewardTrainer
        collator = VisionPreferenceCollator(
            pad_token_id=backbone.tokenizer.pad_token_id, image_processor=backbone.image_processor
        )
    else:
        trainer_cls, collator = RewardTrainer, None
    schedule = config.center_rewards_schedule
    return trainer_cls(
        model=backbone.model,
        args=args,
        train_dataset=train_set,
        processing_class=backbone.tokenizer,
        data_collator=collator,
        peft_config=_peft_config(config),
        callbacks=[CenteringSchedule(config.center_rewards_coefficient, schedule)]
        if schedule
        else None,
    )


def _left_out_as_too_long(train_set, trainer, config: RewardTrainingConfig) -> int:
    """TRL leaves out pairs longer than max_length (image tokens count): say so, and refuse
    to train on nothing."""
    too_long = len(train_set) - len(trainer.train_dataset)
    if too_long == len(train_set):
        raise Align2Error(
            f"every pair is longer than max_length={config.max_length} tokens (a VLM's image "
            "tokens count too): raise --max-length"
        )
    if too_long:
        logger.warning(
            "%d of %d training pairs are longer than max_length=%d tokens and are left out "
            "(--truncate cuts them instead)",
            too_long,
            len(train_set),
            config.max_length,
        )
    return too_long


# The embedded demo: tiny-vlm reward models on the easy-VQA demo annotations, each trained in
# under five minutes on 2 CPU cores (benchmarks/reward_tiny_vlm.py measures them). Pairs only
# the image can decide come first (see the curriculum below).
#
# Every fact kind as a stage of its own or together (descriptions included), then text
# quality. `center_rewards_coefficient` (TRL's auxiliary loss pulling rewards towards zero)
# matters for selection more than for pair accuracy: pairs from one item never fix the
# offset between items, and without it a defective row sat at the 40th percentile of clean
# rows; with 0.01 at the 5th-30th. For answers, 0.5 (after the shape stage, see below) with
# the rubric's score gaps as TRL margins: centring puts every item's candidates around zero
# and the margins space them by the rubric, so scores become comparable across items; a
# broken answer with many right claims no longer outscores a short complete one elsewhere.
# Kept truncated rows under `budget` 30%: 7 with 0.05 and no margins, 6 with 0.2 and
# margins, 1 once the tiny-vlm ending term was also read x20 (`tiny_vlm.ENDING_GAIN`).
_FACT = "=fact:{0}|=short>short_fact:{0}"
# The demo models keep the 256 text positions they were measured with (easy-VQA's texts are
# under 100 tokens; a longer table would start every later weight from other random numbers).
DEMO_BACKBONE = (("max_position_embeddings", 256),)
DEMO_ANSWER_TRAINING = RewardTrainingConfig(
    kind="answer",
    backbone="tiny-vlm",
    backbone_config=DEMO_BACKBONE,
    # Twice the updates of 620 x 64 on the same pairs, in about the same time (279-295 s on
    # 2 cores against 283; the bar's limit is 300 s): yes/no fact pairs 0.90 -> 0.95, and
    # no hallucinated row kept by either policy on the demo pool (two under `align2`).
    # 1240 x 64 learns the facts better still (yes/no 0.99) in twice the time.
    max_steps=1240,
    batch_size=32,
    learning_rate=1e-3,
    warmup_steps=20,
    # Shape alone (~5,800 pairs), then every fact pair (16,000; shape stays in, or it is
    # forgotten), then yes/no again (4,000: the slowest), then broken text against the
    # clean or short answer, then everything at the tail of the cosine schedule.
    curriculum=(
        _FACT.format("shape"),
        "|".join(_FACT.format(k) for k in ("color", "shape", "yesno", "describe")) + "@16000",
        _FACT.format("yesno") + "@4000",
        "=word_shuffle|=short>word_shuffle|=truncated|=short>truncated|=truncated>word_shuffle"
        "|augment:@6400",
    ),
    # Centred hard, with the rubric's score gaps as margins: see the comment above. But only
    # after the shape stage (5,818 pairs: 182 steps): at 0.5 from the start, held-out shape
    # pairs after it were 0.80-0.95 over 8 seeds, at 0.05 0.98-1.0 over 4, and a seed that
    # had collapsed on colour no longer did. Kept low until after the yes/no stage, it
    # broke both bars (docs/tiny-vlm-notes.md, "Reproducibility").
    center_rewards_coefficient=0.05,
    center_rewards_schedule=((182, 0.5),),
    use_margin=True,
)
DEMO_QUESTION_TRAINING = RewardTrainingConfig(
    kind="question",
    backbone="tiny-vlm",
    backbone_config=DEMO_BACKBONE,
    max_steps=250,  # presupposition pairs: 0.96 after 100 steps, 0.999 after 200
    batch_size=64,
    learning_rate=1e-3,
    warmup_steps=20,
    curriculum=("presupposition",),
    center_rewards_coefficient=0.01,
)
