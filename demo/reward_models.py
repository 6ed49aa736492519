"""The embedded demo's reward models: tiny-vlm question and answer models trained on the
train-split demo annotations on first use, then cached (keyed by the training and annotation
configs and the tiny-vlm code, so changing any of them trains anew)."""

from __future__ import annotations

import inspect
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from datasets.fingerprint import Hasher

from align2.demo.annotations import DemoAnnotationConfig, write_demo_annotations
from align2.embedded import DEMO_MODELS, cache_dir
from align2.models import tiny_vlm
from align2.reward.annotations import preference_pairs
from align2.reward.train import DEMO_ANSWER_TRAINING, DEMO_QUESTION_TRAINING, train_reward_model

DEMO_ANNOTATIONS = DemoAnnotationConfig(split="train", seed=0)


def with_demo_models(recipe):
    """A recipe (`align2.builders.recipe.Recipe`) with the demo models' folders where its
    `reward` section names them `DEMO_MODELS`."""
    reward = recipe.reward
    question, answer = resolve_reward_models(reward.question_model, reward.answer_model)
    models = {"question_model": question, "answer_model": answer}
    return recipe.model_copy(update={"reward": reward.model_copy(update=models)})


def resolve_reward_models(question_model: str, answer_model: str) -> tuple[str, str]:
    """The models as given, with `DEMO_MODELS` replaced by the demo models' folders."""
    if DEMO_MODELS not in (question_model, answer_model):
        return question_model, answer_model
    demo = demo_reward_models()
    return tuple(
        str(folder) if model == DEMO_MODELS else model
        for model, folder in zip((question_model, answer_model), demo, strict=True)
    )


def demo_reward_models(
    cache: Path | None = None, *, answer_seed: int = DEMO_ANSWER_TRAINING.seed
) -> tuple[Path, Path]:
    """(question model folder, answer model folder), trained once per config. `answer_seed`
    trains the answer model from another start (benchmarks/demo_quality.py --answer-seed)."""
    answer_training = replace(DEMO_ANSWER_TRAINING, seed=answer_seed)
    key = Hasher.hash(
        [
            asdict(DEMO_ANNOTATIONS),
            asdict(DEMO_QUESTION_TRAINING),
            asdict(answer_training),
            inspect.getsource(tiny_vlm),  # weights cached for older model code would not fit
        ]
    )
    target = Path(cache or cache_dir()) / "demo-reward-models" / key
    if (target / "answer" / "model.safetensors").is_file():
        return target / "question", target / "answer"
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".training-", dir=target.parent))
    try:
        questions, answers = write_demo_annotations(DEMO_ANNOTATIONS, work / "annotations")
        images = work / "annotations" / "images"
        provenance = {"annotations": "align2 demo annotations (easy-VQA train split, seed 0)"}
        for kind, file, config in (
            ("question", questions, DEMO_QUESTION_TRAINING),
            ("answer", answers, answer_training),
        ):
            pairs = preference_pairs(file, image_folder=images)
            train_reward_model(pairs, config, work / kind, provenance=provenance)
        shutil.rmtree(work / "annotations")
        work.rename(target)  # atomic: an interrupted run leaves no half-trained cache entry
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / "question", target / "answer"
