"""Tiny text and vision reward models train through TRL on the CPU in seconds."""

import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from align2.reward.annotations import PREFERENCE_FEATURES
from align2.reward.backbones import build_backbone, load_reward_model
from align2.reward.evaluate import evaluate_pairs
from align2.reward.pipeline import train_and_evaluate
from align2.reward.train import METADATA_FILE, RewardTrainingConfig, train_reward_model

COLORS = {"red": (230, 20, 20), "blue": (20, 20, 230), "green": (20, 200, 20)}


def _colour_pairs(n: int, seed: int) -> datasets.Dataset:
    """Answers that differ only in the colour the image shows: only vision can tell."""
    rng = np.random.default_rng(seed)
    rows = []
    names = sorted(COLORS)
    for i in range(n):
        true, wrong = rng.choice(names, size=2, replace=False)
        image = Image.new("RGB", (64, 64), (245, 240, 235))
        image.paste(Image.new("RGB", (24, 24), COLORS[true]), tuple(rng.integers(0, 40, 2)))
        rows.append(
            {
                "id": str(i),
                "image": image,
                "kind": "answer",
                "prompt": "What color is the shape?",
                "chosen": f"The shape is {true}.",
                "rejected": f"The shape is {wrong}.",
                "margin": 1.0,
                "subset": "color",
            }
        )
    return datasets.Dataset.from_list(rows, features=PREFERENCE_FEATURES)


def _text_pairs(n: int) -> datasets.Dataset:
    """Clean answers over refusals: text alone decides."""
    image = Image.new("RGB", (64, 64), "white")
    rows = [
        {
            "id": str(i),
            "image": image,
            "kind": "answer",
            "prompt": f"What is {i} + 1?",
            "chosen": f"It is {i + 1}.",
            "rejected": "As an AI, I cannot see images.",
            "margin": 1.0,
            "subset": "refusal",
        }
        for i in range(n)
    ]
    return datasets.Dataset.from_list(rows, features=PREFERENCE_FEATURES)


def _losses(model_dir):
    return [e["loss"] for e in json.loads((model_dir / METADATA_FILE).read_text())["log"]]


def test_tiny_text_model_learns_and_reloads_identically(tmp_path):
    pairs = _text_pairs(64)
    before = evaluate_pairs(build_backbone("tiny-text", seed=0), pairs)["overall"]
    config = RewardTrainingConfig(
        kind="answer",
        backbone="tiny-text",
        max_steps=30,
        batch_size=16,
        learning_rate=1e-3,
        warmup_steps=0,
    )
    model_dir = train_reward_model(pairs, config, tmp_path / "rm")
    losses = _losses(model_dir)
    assert losses[-1] < losses[0]
    assert (model_dir / "model.safetensors").is_file()
    assert not list(model_dir.glob("*.bin"))
    reloaded = load_reward_model(model_dir)
    after = evaluate_pairs(reloaded, pairs)
    assert after["overall"]["accuracy"] >= 0.95
    assert after["overall"]["mean_margin"] > before["mean_margin"] + 1.0
    again = evaluate_pairs(load_reward_model(model_dir), pairs)
    assert again == after  # save/reload scores identically


@pytest.mark.slow
def test_tiny_vlm_learns_a_visual_fact(tmp_path):
    train, held_out = _colour_pairs(384, seed=0), _colour_pairs(96, seed=1)
    config = RewardTrainingConfig(
        kind="answer",
        backbone="tiny-vlm",
        max_steps=60,
        batch_size=32,
        learning_rate=1e-3,
        warmup_steps=5,
    )
    initial = build_backbone("tiny-vlm", seed=0).model.state_dict()
    model_dir = train_reward_model(train, config, tmp_path / "vlm")
    losses = _losses(model_dir)
    assert losses[-1] < losses[0]
    trained = load_reward_model(model_dir)
    changed = [
        k
        for k, v in trained.model.state_dict().items()
        if k.startswith("vision") and not torch.equal(v, initial[k])
    ]
    assert changed, "the vision stem did not train"
    accuracy = evaluate_pairs(trained, held_out)["overall"]["accuracy"]
    assert accuracy > 0.75  # chance is 0.5: the text never says which colour is right


def test_train_and_evaluate_writes_eval_and_card(tmp_path):
    records = [
        {
            "id": f"x{i}",
            "image": "a.png",
            "kind": "answer",
            "prompt": f"Q{i}?",
            "candidates": [f"Answer {i}.", "As an AI, I cannot.", "<div></div>"],
            "scores": [1.0, 0.1, 0.0],
            "labels": ["original", "refusal", "markup_noise"],
        }
        for i in range(24)
    ]
    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 64), "white").save(tmp_path / "images" / "a.png")
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(records))
    config = RewardTrainingConfig(
        kind="answer",
        backbone="tiny-text",
        max_steps=10,
        batch_size=8,
        learning_rate=1e-3,
        warmup_steps=0,
    )
    model_dir, evaluation = train_and_evaluate(
        config,
        path,
        tmp_path / "images",
        tmp_path / "m",
        eval_annotations=path,
        eval_image_folder=tmp_path / "images",
    )
    saved = json.loads((model_dir / "eval.json").read_text())
    assert saved == json.loads(json.dumps(evaluation))
    assert set(saved["per_subset"]) == {"refusal", "markup_noise", "refusal>markup_noise"}
    card = (model_dir / "README.md").read_text()
    assert "## align2 reward model" in card and "| refusal |" in card
    assert "trl" in card.lower()  # TRL's own card is kept and enriched


def test_lora_training_merges_into_a_plain_model(tmp_path):
    pairs = _text_pairs(32)
    config = RewardTrainingConfig(
        kind="answer",
        backbone="tiny-text",
        max_steps=8,
        batch_size=8,
        learning_rate=1e-3,
        warmup_steps=0,
        lora_r=4,
    )
    model_dir = train_reward_model(pairs, config, tmp_path / "lora")
    assert not (model_dir / "adapter_config.json").exists()  # merged: one self-contained model
    reloaded = load_reward_model(model_dir)
    assert type(reloaded.model).__name__ == "LlamaForSequenceClassification"
    assert evaluate_pairs(reloaded, pairs)["overall"]["pairs"] == 32


def test_curriculum_puts_stages_first_and_keeps_every_pair():
    from align2.reward.train import curriculum_order

    subsets = ["a", "fact:x", "b>fact:x", "fact:shape", "fact:shape>refusal", "short>short_fact:y"]
    pairs = datasets.Dataset.from_dict({"subset": subsets})
    stages = ("=fact:shape", "=fact:shape", "fact:x|short>short_fact:")
    ordered = curriculum_order(pairs, stages, seed=0)["subset"]
    assert ordered[:2] == ["fact:shape", "fact:shape"]  # exact match, stage repeated
    assert sorted(ordered[2:4]) == ["fact:x", "short>short_fact:y"]  # prefixes
    assert sorted(ordered[4:]) == sorted(subsets)  # then every pair, once more


def test_curriculum_stage_cap_takes_a_seeded_sample():
    from align2.reward.train import curriculum_order

    subsets = [f"fact:{i}" for i in range(10)] + ["other"] * 5
    pairs = datasets.Dataset.from_dict({"subset": subsets})
    ordered = curriculum_order(pairs, ("fact:@3",), seed=0)["subset"]
    assert len(ordered) == 3 + 15
    assert all(s.startswith("fact:") for s in ordered[:3])
    assert len(set(ordered[:3])) == 3
    assert ordered == curriculum_order(pairs, ("fact:@3",), seed=0)["subset"]
    assert curriculum_order(pairs, ("fact:@30",), seed=0).num_rows == 10 + 15
    with pytest.raises(ValueError, match="pair count"):
        curriculum_order(pairs, ("fact:@x",), seed=0)


def test_a_vision_language_classifier_is_refused_not_trained_on_text_alone(tmp_path):
    from transformers import Gemma3Config, Gemma3ForSequenceClassification

    from align2.errors import Align2Error

    build_backbone("tiny-text").tokenizer.save_pretrained(tmp_path)
    config = Gemma3Config(
        text_config={
            "vocab_size": 49153,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        mm_tokens_per_image=4,
        num_labels=1,
    )
    Gemma3ForSequenceClassification(config).save_pretrained(tmp_path)
    with pytest.raises(Align2Error, match="is a vision-language model .* only to `tiny-vlm`"):
        build_backbone(str(tmp_path))
    with pytest.raises(Align2Error, match="Gemma3ForSequenceClassification"):
        load_reward_model(tmp_path)
