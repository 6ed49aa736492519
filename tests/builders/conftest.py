"""Shared fixtures: a small demo pool on disk and tiny random reward models saved as folders
(the scoring path loads them exactly as it loads trained ones)."""

import pytest

from align2.builders.demo_pool import DemoPoolConfig, build_demo_pool, write_demo_pool
from align2.reward.backbones import build_backbone


def save_tiny_vlm(folder, seed):
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
    out = tmp_path_factory.mktemp("pool")
    write_demo_pool(build_demo_pool(DemoPoolConfig(split="test", size=60, seed=5)), out)
    return out
