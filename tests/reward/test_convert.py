"""`align2 reward convert` on a tiny checkpoint written in the seed authors' exact layout: a
LLaVA-codebase model (LLaMA names under `model.`, `model.mm_projector`, a CLIP tower under
`model.vision_tower.vision_tower`, a `score` head), LoRA'd with PEFT on every linear layer
LLaVA's `find_all_linear_names` picks, saved as their train.py saves it. The converted model,
scored through align2's own path, must give the scores of the original layout's forward."""

import json
from pathlib import Path

import peft
import pytest
import torch
from helpers import run_align2
from PIL import Image
from torch import nn


def _tiny_llava_hf_base(folder: Path):
    """A LLaVA-1.5-shaped base in the llava-hf layout: CLIP tower (layer -2, CLS dropped), a
    2-layer GELU projector, a LLaMA language model, its processor."""
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from align2.embedded import smollm2_tokenizer_path

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(
        smollm2_tokenizer_path(), extra_special_tokens={"image_token": "<image>"}
    )
    processor = LlavaProcessor(
        CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS, dropped by "default": 16 image tokens
    )
    layers = {"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 96}
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=48, image_size=32, patch_size=8, **layers),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            num_key_value_heads=2,
            pad_token_id=tokenizer.pad_token_id,
            **layers,
        ),
        image_token_index=tokenizer.image_token_id,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return config, processor


def _authors_model(config, base_state: dict):
    """The LLaVA codebase's LlavaLlamaModelForSequenceClassification, by parameter name:
    LLaMA under `model.`, `model.mm_projector.{0,2}`, `model.vision_tower.vision_tower`,
    `score`; its base weights the llava-hf base's (one model, two layouts)."""
    from transformers import CLIPVisionModel, LlamaForSequenceClassification

    from align2.reward.convert import llava_hf_name

    text_config = config.text_config.__class__(**{**config.text_config.to_dict(), "num_labels": 1})
    model = LlamaForSequenceClassification(text_config)  # one score, as the seed's
    hidden, vision_hidden = config.text_config.hidden_size, config.vision_config.hidden_size
    model.model.mm_projector = nn.Sequential(
        nn.Linear(vision_hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden)
    )
    model.model.vision_tower = nn.Module()
    model.model.vision_tower.vision_tower = CLIPVisionModel(config.vision_config)
    state = {
        name: base_state[llava_hf_name(name)]
        for name in model.state_dict()
        if not name.startswith("score.")
    }
    model.load_state_dict(state, strict=False)
    return model


def _write_authors_checkpoint(model, folder: Path, seed: int = 1):
    """LoRA (r=4, alpha=8) on every linear layer outside the projector and the vision tower
    (LLaVA's find_all_linear_names: the score head too); the projector and the score head
    trained in full. Saved as train.py does: the adapter (`.bin`, as PEFT wrote it then),
    `non_lora_trainables.bin` and the config. Trained weights are random, not zero."""
    names = {
        name.split(".")[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and "mm_projector" not in name
        and "vision_tower" not in name
    }
    # Their task_type "CAUSAL_LM" needs a generation method this stand-in lacks; the saved
    # names are the same without it (`base_model.model.` + the module path).
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=sorted(names))
    wrapped = peft.get_peft_model(model, lora)
    generator = torch.Generator().manual_seed(seed)
    for name, param in wrapped.named_parameters():
        trained = (
            "lora_" in name or "mm_projector" in name or name.endswith("score.base_layer.weight")
        )
        if trained:
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
            param.requires_grad_(True)
    lora_state = {k: v for k, v in wrapped.named_parameters() if "lora_" in k}
    non_lora = {
        k: v.detach().clone()
        for k, v in wrapped.named_parameters()
        if "lora_" not in k and v.requires_grad
    }
    assert any("mm_projector" in k for k in non_lora) and any("score" in k for k in non_lora)
    wrapped.save_pretrained(folder, state_dict=lora_state, safe_serialization=False)
    torch.save(non_lora, folder / "non_lora_trainables.bin")
    (folder / "config.json").write_text(json.dumps({"model_type": "llava_llama"}))
    return wrapped


@torch.no_grad()
def _original_forward(wrapped, processor, text, image):
    """The LLaVA codebase's forward: CLIP features at layer -2 without CLS, the projector, the
    features in place of the image token, the LoRA'd LLaMA, the score at the last token."""
    inputs = processor(text=[text], images=[[image]], return_tensors="pt")
    model = wrapped.base_model.model
    tower = model.model.vision_tower.vision_tower
    features = tower(inputs["pixel_values"], output_hidden_states=True).hidden_states[-2][:, 1:]
    features = model.model.mm_projector(features)
    embeds = model.model.embed_tokens(inputs["input_ids"])
    embeds[inputs["input_ids"] == processor.tokenizer.image_token_id] = features.reshape(
        -1, features.shape[-1]
    )
    hidden = model.model(inputs_embeds=embeds).last_hidden_state
    return model.score(hidden[:, -1]).item()


def test_a_converted_checkpoint_scores_as_the_original(tmp_path):
    from transformers import LlavaForConditionalGeneration

    from align2.models.backbones import load_reward_model
    from align2.models.scoring import score_texts
    from align2.reward.templates import answer_text

    config, processor = _tiny_llava_hf_base(tmp_path / "base")
    base_state = LlavaForConditionalGeneration.from_pretrained(tmp_path / "base").state_dict()
    checkpoint = tmp_path / "authors"
    wrapped = _write_authors_checkpoint(_authors_model(config, base_state), checkpoint)
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.bin",
        "config.json",
        "non_lora_trainables.bin",
    ]
    result = run_align2(
        "reward",
        "convert",
        checkpoint,
        "--kind",
        "answer",
        "--base",
        tmp_path / "base",
        "--out",
        tmp_path / "converted",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list((tmp_path / "converted").glob("*.bin"))  # safetensors only

    converted = load_reward_model(tmp_path / "converted")
    images = [Image.new("RGB", (32, 32), c) for c in ((200, 30, 30), (20, 40, 220), (90, 90, 90))]
    questions = ["What colour is it?", "Is it blue?", "Describe the image in detail."]
    answers = ["It is red.", "No, it is not blue at all.", "A flat grey square, nothing else."]
    texts = [answer_text(q, a) for q, a in zip(questions, answers, strict=True)]
    ours = score_texts(converted, texts, images)
    theirs = [
        _original_forward(wrapped, processor, t, i) for t, i in zip(texts, images, strict=True)
    ]
    assert ours.tolist() == pytest.approx(theirs, abs=1e-5)
    assert len(set(round(s, 4) for s in theirs)) == 3  # the scores differ by row


def test_a_checkpoint_that_is_not_one_is_a_clear_error(tmp_path):
    (tmp_path / "ckpt").mkdir()
    result = run_align2(
        "reward",
        "convert",
        tmp_path / "ckpt",
        "--kind",
        "answer",
        "--out",
        tmp_path / "o",
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {tmp_path / 'ckpt'}: no adapter_config.json; is it a LoRA checkpoint?"
    )
