"""Test isolation: no network, no user cache. Set before anything imports `datasets`."""

import json
import os
import tempfile
from pathlib import Path

os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="align2-test-hf-home-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.pop("HF_TOKEN", None)

import pytest  # noqa: E402
from helpers import write_png  # noqa: E402


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    write_png(folder / "ok.png")
    return folder


@pytest.fixture
def write_llava(tmp_path):
    def write(rows, name="data.json") -> Path:
        path = tmp_path / name
        if name.endswith(".jsonl"):
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        else:
            path.write_text(json.dumps(rows), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    """A tiny random causal LM (SmolLM2's tokenizer and chat template) saved as a folder:
    the rewriter's real path, in seconds."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from align2.embedded import smollm2_tokenizer_path

    folder = tmp_path_factory.mktemp("tiny-lm")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_path())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def lively_lm(tiny_lm, tmp_path_factory):
    """The tiny random LM with its weights scaled up: at their initial scale every prompt
    gets nearly the same next-token distribution, so a row given another row's result (or
    the wrong positions) could pass unnoticed."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(tiny_lm, tmp_path_factory.mktemp("lively") / "lm")
    weights = {k: v * 8.0 for k, v in load_file(folder / "model.safetensors").items()}
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return str(folder)


# Tiny random reward models saved as folders: the scoring path loads them exactly as it loads
# trained ones.
def save_tiny_vlm(folder, seed):
    from align2.models.backbones import build_backbone

    backbone = build_backbone("tiny-vlm", seed=seed)
    backbone.model.save_pretrained(folder)
    backbone.tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """(question model, answer model, another model): random tiny-vlm folders."""
    root = tmp_path_factory.mktemp("models")
    return tuple(save_tiny_vlm(root / name, seed) for seed, name in enumerate("qao"))


@pytest.fixture(scope="session")
def small_pool(tmp_path_factory):
    from align2.demo.pool import DemoPoolConfig, build_demo_pool, write_demo_pool

    out = tmp_path_factory.mktemp("pool")
    write_demo_pool(build_demo_pool(DemoPoolConfig(split="test", size=60, seed=5)), out)
    return out


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory):
    """A tiny LLaVA whose weights are scaled up, so its likelihoods differ by row."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    from align2.demo.pool import DemoPoolConfig, build_demo_pool
    from align2.evaluate.tiny_llava import TinyLlavaConfig, build_tiny_llava, pretrain_vision

    pool_rows = build_demo_pool(DemoPoolConfig(split="train", size=48, seed=3))
    small = TinyLlavaConfig(text_hidden_size=32, vocab_size=400, vision_steps=3)
    folder = tmp_path_factory.mktemp("tiny-llava")
    corpus = [t["value"] for r in pool_rows for t in r["conversations"]]
    build_tiny_llava(small, corpus, folder)
    images = [Image.open(r["image"]).convert("RGB") for r in pool_rows]
    pretrain_vision(folder, images, [i % 24 for i in range(len(images))], small)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    with torch.no_grad():
        for parameter in model.model.language_model.parameters():
            if parameter.dim() > 1:
                parameter.mul_(8.0)
    model.save_pretrained(folder)
    return folder
