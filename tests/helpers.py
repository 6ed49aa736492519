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
