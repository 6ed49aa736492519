"""Small helpers shared by tests (importable: tests/ is on pytest's pythonpath)."""

from pathlib import Path

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
