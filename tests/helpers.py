"""Small helpers shared by tests (importable: tests/ is on pytest's pythonpath)."""

from pathlib import Path

import yaml
from PIL import Image


def write_png(path: Path, size=(8, 8), color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def llava_row(
    row_id: str, image: str = "ok.png", question="<image>\nWhat color is it?", answer="Red."
) -> dict:
    return {
        "id": row_id,
        "image": image,
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
    }


def release_recipe(tmp_path: Path, tiny_models, tiny_lm, **changes) -> Path:
    """A small release recipe (30 demo rows, the tiny test models) written to a file."""
    data = {
        "name": "tiny-release",
        "description": "Test <script>alert(1)</script> | --- release",
        "source": {"demo_pool": {"split": "test", "size": 30, "seed": 1}, "license": "mit"},
        "reward": {"question_model": tiny_models[0], "answer_model": tiny_models[1]},
        "selection": {"policy": "align2", "question_ratio": 0.5, "answer_ratio": 0.5},
        "rewrite": {"model": tiny_lm, "max_new_tokens": 6, "batch_size": 16},
        "target": "local:hub",
        **changes,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def save_tiny_hub_vlm(kind: str, folder: Path) -> Path:
    """A tiny VLM saved as the Hub holds it (the generative model and its processor, 64 px
    images), built from configs with SmolLM2's tokenizer: `gemma3` or `llava`."""
    import torch
    from transformers import (
        AutoTokenizer,
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    from align2.embedded import smollm2_tokenizer_path

    torch.manual_seed(0)
    size, patch = 64, 8
    layers = {"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
    pixels = {"size": {"height": size, "width": size}, "image_mean": [0.5] * 3}
    pixels["image_std"] = [0.5] * 3
    vision = {"hidden_size": 64, "image_size": size, "patch_size": patch, **layers}
    if kind == "gemma3":
        special = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"}
        tokenizer = AutoTokenizer.from_pretrained(
            smollm2_tokenizer_path(), extra_special_tokens={**special, "image_token": "<img>"}
        )
        processor = Gemma3Processor(Gemma3ImageProcessor(**pixels), tokenizer, image_seq_length=16)
        text = {"vocab_size": len(tokenizer), "hidden_size": 64, "head_dim": 16, **layers}
        config = Gemma3Config(
            text_config={**text, "num_key_value_heads": 2, "pad_token_id": tokenizer.pad_token_id},
            vision_config=vision,
            mm_tokens_per_image=16,
            boi_token_index=tokenizer.boi_token_id,
            eoi_token_index=tokenizer.eoi_token_id,
            image_token_index=tokenizer.image_token_id,
        )
        model = Gemma3ForConditionalGeneration(config)
    elif kind == "llava":
        tokenizer = AutoTokenizer.from_pretrained(
            smollm2_tokenizer_path(), extra_special_tokens={"image_token": "<image>"}
        )
        # SigLIP has no CLS token: every patch is an image token ("full").
        processor = LlavaProcessor(
            SiglipImageProcessor(**pixels),
            tokenizer,
            patch_size=patch,
            vision_feature_select_strategy="full",
        )
        config = LlavaConfig(
            vision_config=SiglipVisionConfig(**vision),
            text_config=LlamaConfig(
                vocab_size=len(tokenizer),
                hidden_size=64,
                num_key_value_heads=2,
                pad_token_id=tokenizer.pad_token_id,
                **layers,
            ),
            image_token_index=tokenizer.image_token_id,
            vision_feature_select_strategy="full",
            vision_feature_layer=-1,
        )
        model = LlavaForConditionalGeneration(config)
    else:
        raise ValueError(kind)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def canonical_dataset(rows: list[dict], source: str = "test"):
    """Canonical rows as a `Dataset`; `source_id` and `source` are filled in where absent."""
    import datasets

    from align2.data.schema import FEATURES

    filled = [
        {"source_id": r["id"], "source": source, **{k: v for k, v in r.items() if k in FEATURES}}
        for r in rows
    ]
    return datasets.Dataset.from_list(filled, features=FEATURES)


def run_align2(*args, cwd=None):
    """The real `align2` command in a subprocess (this environment, stdout and stderr kept)."""
    import os
    import subprocess
    import sys

    command = str(Path(sys.executable).with_name("align2"))
    return subprocess.run(
        [command, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=os.environ.copy()
    )


def build_locally(recipe_path: Path, tmp_path: Path, work_root: Path | None = None, **kwargs):
    """`build_release` of a recipe file into the local hub `tmp_path/hub`."""
    from align2.builders.recipe import load_recipe
    from align2.publish.release import build_release, recipe_yaml
    from align2.publish.targets import LocalHub

    recipe = load_recipe(recipe_path)
    return build_release(
        recipe,
        recipe_yaml(recipe),
        target=LocalHub(tmp_path / "hub"),
        work_root=work_root or tmp_path / "work",
        **kwargs,
    )
