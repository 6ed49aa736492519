"""`align2 reward ...`: train and evaluate question / answer reward models."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Train and evaluate reward models.", no_args_is_help=True)


class Kind(str, Enum):
    question = "question"
    answer = "answer"


ImageFolder = Annotated[
    Path | None,
    typer.Option(
        help="Folder the annotations' image paths are relative to "
        "[default: images/ beside the annotation file]"
    ),
]


def _image_folder(annotations: Path, image_folder: Path | None) -> Path:
    return image_folder or Path(annotations).parent / "images"


def _step_values(options: list[str]):
    for option in options:
        step, _, value = option.partition(":")
        try:
            yield int(step), float(value)
        except ValueError:
            raise typer.BadParameter(
                f"{option!r} is not STEP:COEFFICIENT", param_hint="--center-rewards-from"
            ) from None


@app.command("train")
def train(
    kind: Annotated[Kind, typer.Option(help="Which model: question f(I,Q) or answer g(I,Q,A).")],
    annotations: Annotated[Path, typer.Option(help="Annotation file (seed, generic or pairs).")],
    out: Annotated[Path, typer.Option(help="Output folder for the model.")],
    backbone: Annotated[
        str, typer.Option(help="tiny-vlm, tiny-text, smollm2, a .gguf, a local folder or a Hub id.")
    ] = "tiny-vlm",
    image_folder: ImageFolder = None,
    eval_annotations: Annotated[Path | None, typer.Option(help="Held-out annotations.")] = None,
    max_steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 600,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 32,
    learning_rate: Annotated[float, typer.Option()] = 3e-4,
    warmup_steps: Annotated[int, typer.Option()] = 50,
    curriculum: Annotated[
        list[str] | None,
        typer.Option(
            help="A curriculum stage, 'pattern|pattern[@N]' on the pairs' subset (repeatable; "
            "then all pairs shuffled)."
        ),
    ] = None,
    center_rewards: Annotated[
        float | None, typer.Option(help="TRL's center_rewards_coefficient.")
    ] = None,
    center_rewards_from: Annotated[
        list[str] | None,
        typer.Option(help="STEP:COEFFICIENT: centre with COEFFICIENT from STEP on (repeatable)."),
    ] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank (alpha = 2r).")] = None,
    max_length: Annotated[
        int, typer.Option(help="Longest pair in tokens, a VLM's image tokens included.")
    ] = 256,
    truncate: Annotated[
        bool, typer.Option(help="Cut longer pairs to --max-length (default: leave them out).")
    ] = False,
    use_margin: Annotated[bool, typer.Option(help="Use score gaps in the loss.")] = False,
    augment_p: Annotated[float, typer.Option(help="Corruption augmentation rate.")] = 0.25,
    seed: Annotated[int, typer.Option()] = 0,
    trust_remote_code: Annotated[bool, typer.Option(help="Run code from the model repo.")] = False,
) -> None:
    """Train a reward model with TRL on human-preference annotations."""
    from align2.reward.pipeline import train_and_evaluate
    from align2.reward.train import RewardTrainingConfig

    config = RewardTrainingConfig(
        kind=kind.value,
        backbone=backbone,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        curriculum=tuple(curriculum or ()),
        center_rewards_coefficient=center_rewards,
        center_rewards_schedule=tuple(_step_values(center_rewards_from or [])),
        lora_r=lora_r,
        max_length=max_length,
        truncate=truncate,
        use_margin=use_margin,
        seed=seed,
        trust_remote_code=trust_remote_code,
    )
    model_dir, evaluation = train_and_evaluate(
        config,
        annotations,
        _image_folder(annotations, image_folder),
        out,
        eval_annotations=eval_annotations,
        eval_image_folder=_image_folder(eval_annotations, image_folder)
        if eval_annotations
        else None,
        augment_p=augment_p,
    )
    typer.echo(f"saved {kind.value} reward model to {model_dir}")
    if evaluation:
        typer.echo(f"held-out pairwise accuracy: {evaluation['overall']['accuracy']:.3f}")


@app.command("eval")
def evaluate(
    model: Annotated[Path, typer.Option(help="A saved reward model folder.")],
    annotations: Annotated[Path, typer.Option(help="Annotation file to evaluate on.")],
    out: Annotated[Path, typer.Option(help="Where to write the JSON metrics.")],
    image_folder: ImageFolder = None,
    trust_remote_code: Annotated[bool, typer.Option()] = False,
) -> None:
    """Pairwise accuracy and margin, overall, per kind and per subset."""
    from align2.reward.pipeline import evaluate_model

    result = evaluate_model(
        model,
        annotations,
        _image_folder(annotations, image_folder),
        trust_remote_code=trust_remote_code,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(
        f"pairwise accuracy {result['overall']['accuracy']:.3f} "
        f"over {result['overall']['pairs']} pairs -> {out}"
    )


@app.command("convert")
def convert(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="The seed authors' LoRA checkpoint folder (adapter_config.json, "
            "adapter_model.*, non_lora_trainables.bin)."
        ),
    ],
    kind: Annotated[Kind, typer.Option(help="Which model it is: question or answer.")],
    out: Annotated[Path, typer.Option(help="Where to save the converted reward model.")],
    base: Annotated[
        str | None,
        typer.Option(
            help="The llava-hf model of the checkpoint's base (Hub id or folder) "
            "[default: llava-hf/llava-1.5-7b-hf]"
        ),
    ] = None,
) -> None:
    """Turn a LLaVA-codebase reward model (Align2LLaVA's released ones) into align2's (once)."""
    from align2.reward.convert import convert_llava_checkpoint

    options = {"base": base} if base else {}
    folder = convert_llava_checkpoint(checkpoint, out, kind=kind.value, **options)
    typer.echo(f"saved {kind.value} reward model to {folder}")
