"""Tiny text and vision reward models train through TRL on the CPU in seconds."""

import json
from dataclasses import replace

import datasets
import numpy as np
import pytest
import torch
from helpers import save_tiny_hub_vlm
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

from align2.errors import Align2Error
from align2.models.backbones import build_backbone, load_reward_model
from align2.models.scoring import score_texts
from align2.reward.annotations import PREFERENCE_FEATURES
from align2.reward.evaluate import evaluate_pairs
from align2.reward.pipeline import train_and_evaluate
from align2.reward.templates import answer_text
from align2.reward.train import (
    DEMO_BACKBONE,
    METADATA_FILE,
    RewardTrainingConfig,
    train_reward_model,
)

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


TABLE_WORDS = ["cup", "pen", "book", "lamp", "plate", "phone", "clock", "key"]


def _table_pairs(n: int, seed: int, subset: str, answers) -> datasets.Dataset:
    """Answers to "What is on the table?" about a blank image: the text alone decides.
    `answers(rng, i, a, b)` gives (chosen, rejected) for two table words a and b."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (64, 64), "white")
    rows = []
    for i in range(n):
        a, b = rng.choice(TABLE_WORDS, size=2, replace=False)
        chosen, rejected = answers(rng, i, a, b)
        rows.append(
            {
                "id": str(i),
                "image": image,
                "kind": "answer",
                "prompt": "What is on the table?",
                "chosen": chosen,
                "rejected": rejected,
                "margin": 1.0,
                "subset": subset,
            }
        )
    return datasets.Dataset.from_list(rows, features=PREFERENCE_FEATURES)


def _cut(rng, i, a, b):
    """A complete answer over one cut mid-sentence: the cut keeps every claim the full
    sentence makes, so only how the text ends tells."""
    full = f"There is a {a} next to the {b}."
    return (full if i % 2 else f"A {a}."), " ".join(full.split()[: rng.integers(3, 7)])


def _shuffled(rng, i, a, b):
    """An answer over its words in another order, the last word kept in place: the claims
    and the ending are the same, only how the words follow one another differs."""
    head = f"There is a {a} next to the".split()
    shuffled = list(head)
    while shuffled == head:
        shuffled = list(rng.permutation(head))
    return " ".join([*head, f"{b}."]), " ".join([*shuffled, f"{b}."])


def _learns_from_text(answers, subset: str, tmp_path):
    """tiny-vlm trained 40 steps on such pairs tells held-out ones apart, as it did not
    before; returns (the trained model, the held-out pairs). The demo's 256-position table:
    how a random start orders a shuffled pair is chance, and with 2048 positions seed 0's
    start already ordered 0.97 of them."""
    train, held_out = _table_pairs(256, 0, subset, answers), _table_pairs(64, 1, subset, answers)
    config = RewardTrainingConfig(
        kind="answer",
        backbone="tiny-vlm",
        max_steps=40,
        batch_size=32,
        learning_rate=1e-3,
        warmup_steps=0,
        backbone_config=DEMO_BACKBONE,
    )
    untrained = build_backbone("tiny-vlm", seed=0, **dict(DEMO_BACKBONE))
    before = evaluate_pairs(untrained, held_out)["overall"]
    trained = load_reward_model(train_reward_model(train, config, tmp_path / "vlm"))
    after = evaluate_pairs(trained, held_out)["overall"]
    assert after["accuracy"] >= 0.95 > before["accuracy"]
    return trained, held_out


def test_tiny_vlm_learns_that_a_cut_answer_is_worse(tmp_path):
    trained, _ = _learns_from_text(_cut, "truncated", tmp_path)
    endings = trained.model.endings.weight.squeeze(-1)
    period, cut_word = (trained.tokenizer.convert_tokens_to_ids(t) for t in (".", "Ġa"))
    assert endings[period] > endings[cut_word]  # read before the template's closing newline


def test_tiny_vlm_learns_that_a_shuffled_answer_is_worse(tmp_path):
    trained, held_out = _learns_from_text(_shuffled, "word_shuffle", tmp_path)

    def fluency(answers):
        texts = [answer_text("What is on the table?", a) for a in answers]
        batch = trained.tokenizer(
            texts, padding=True, add_special_tokens=False, return_tensors="pt"
        )
        return trained.model.fluency(batch["input_ids"], batch["attention_mask"]).squeeze(-1)

    # The fluency term itself tells them apart (with FLUENCY_GAIN 0 it never moves).
    assert bool((fluency(held_out["chosen"]) > fluency(held_out["rejected"])).all())


def test_centring_schedule_changes_the_loss_from_its_step_on(tmp_path):
    pairs = _text_pairs(64)
    plain = RewardTrainingConfig(
        kind="answer",
        backbone="tiny-text",
        max_steps=4,  # a loss logged per step
        batch_size=16,
        learning_rate=1e-3,
        warmup_steps=0,
        center_rewards_coefficient=0.0,
    )
    scheduled = replace(plain, center_rewards_schedule=((2, 50.0),))
    plain_losses = _losses(train_reward_model(pairs, plain, tmp_path / "plain"))
    scheduled_losses = _losses(train_reward_model(pairs, scheduled, tmp_path / "scheduled"))
    assert scheduled_losses[:2] == plain_losses[:2]  # same seed, same first two steps
    assert scheduled_losses[2] > plain_losses[2] + 0.01  # step 3 pays the centring term
    with pytest.raises(ValueError, match="ascending"):
        replace(plain, center_rewards_schedule=((5, 0.1), (2, 0.5)))


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


@pytest.mark.parametrize("kind", ["gemma3", "llava"])
def test_a_hub_vision_language_classifier_trains_with_its_images(tmp_path, kind):
    """A Hub VLM (here a tiny one saved as the Hub holds it) trains through TRL with the
    image its processor encodes, and scores with it after a reload."""
    folder = save_tiny_hub_vlm(kind, tmp_path / "hub")
    pairs = _text_pairs(32)
    config = RewardTrainingConfig(
        kind="answer", backbone=str(folder), max_steps=12, batch_size=8, learning_rate=1e-3
    )
    with pytest.raises(Align2Error, match="every pair is longer than max_length=20"):
        train_reward_model(
            pairs, replace(config, max_length=20), tmp_path / "short"
        )  # 16 for the image
    initial = build_backbone(str(folder), seed=0).model.state_dict()
    model_dir = train_reward_model(pairs, config, tmp_path / "rm")
    losses = _losses(model_dir)
    assert losses[-1] < losses[0]
    trained = load_reward_model(model_dir)
    assert trained.processor is not None and not list(model_dir.glob("*.bin"))
    changed = [
        k
        for k, v in trained.model.state_dict().items()
        if "vision_tower" in k and not torch.equal(v, initial[k])
    ]
    assert changed, "no gradient reached the vision tower: the images were not fed"
    after = evaluate_pairs(trained, pairs)
    assert after["overall"]["accuracy"] >= 0.9
    assert evaluate_pairs(load_reward_model(model_dir), pairs) == after
    text = answer_text("What color is the shape?", "It is red.")
    red, blue = Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")
    scores = score_texts(trained, [text, text, text], [red, blue, red])
    assert scores[0] != scores[1] and scores[0] == pytest.approx(scores[2], abs=1e-6)


@pytest.mark.parametrize("kind", ["gemma3", "llava"])
def test_a_hub_vision_language_checkpoint_loads_every_weight_under_the_score_head(tmp_path, kind):
    """Hub VLM checkpoints keep the older layout (`language_model.model.*`, `vision_tower.*`):
    the classifier must load every weight of the generative model but its LM head."""
    folder = save_tiny_hub_vlm(kind, tmp_path / "hub")
    saved = load_file(folder / "model.safetensors")
    assert any(k.startswith("language_model.model.") for k in saved)
    generative = AutoModelForImageTextToText.from_pretrained(folder).state_dict()
    classifier = build_backbone(str(folder)).model.state_dict()
    assert set(classifier) - set(generative) == {"score.weight"}
    assert set(generative) - set(classifier) <= {"lm_head.weight"}
    assert all(torch.equal(classifier[k], generative[k]) for k in classifier if k != "score.weight")
