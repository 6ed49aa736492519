"""Exports loaded back with their consumers' conventions: LLaVA's json + image folder, and
TRL's `messages` + `images` (one image placeholder per image)."""

import json

import datasets
import pytest
from helpers import canonical_dataset
from PIL import Image

from align2.data.exports import export_llava, export_messages, to_messages


def _rows(tmp_path):
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8), (30, 30, 200)).save(tmp_path / "b.jpg")
    rows = [
        {
            "id": "../../escape me",
            "image": str(tmp_path / "a.png"),
            "conversations": [
                {"from": "human", "value": "<image>\nWhat colour?"},
                {"from": "gpt", "value": "Red."},
                {"from": "human", "value": "Sure?"},
                {"from": "gpt", "value": "Yes."},
            ],
            "type": "conversation",
            "source": "t",
        },
        {
            "id": "b",
            "image": str(tmp_path / "b.jpg"),
            "conversations": [
                {"from": "human", "value": "What colour?\n<image>"},
                {"from": "gpt", "value": "Blue."},
            ],
            "type": "detail",
            "source": "t",
        },
    ]
    return canonical_dataset(rows)


def test_llava_export_is_a_json_list_and_an_image_folder(tmp_path):
    out = tmp_path / "export"
    path = export_llava(_rows(tmp_path), out)
    records = json.loads(path.read_text())
    assert [r["id"] for r in records] == ["../../escape me", "b"]
    for record in records:
        image = (out / "images" / record["image"]).resolve()
        assert image.parent == (out / "images").resolve()  # ids cannot escape the folder
        with Image.open(image) as im:
            assert im.size == (8, 8)
        assert record["conversations"][0]["value"].count("<image>") == 1
    assert records[1]["image"].endswith(".jpg")  # bytes kept as published
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(r["image"] for r in records)


def test_messages_export_has_one_placeholder_per_image(tmp_path):
    path = export_messages(_rows(tmp_path), tmp_path / "messages")
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    for row in ds:
        placeholders = sum(
            part["type"] == "image" for message in row["messages"] for part in message["content"]
        )
        assert placeholders == len(row["images"]) == 1
        assert row["images"][0].size == (8, 8)
        assert [m["role"] for m in row["messages"]][:2] == ["user", "assistant"]
    first = ds[0]["messages"][0]["content"]
    assert [p["type"] for p in first] == ["image", "text"]
    assert to_messages([{"from": "human", "value": "Q?\n<image>"}])[0]["content"] == [
        {"type": "text", "text": "Q?"},
        {"type": "image"},
    ]


def test_export_names_stay_distinct_for_long_ids():
    from align2.data.exports import MAX_NAME, safe_name

    long_ids = ["x" * 130 + "A", "x" * 130 + "B", "x" * 130 + "/B"]
    names = [safe_name(i) for i in long_ids]
    assert len(set(names)) == 3 and all(len(n) <= MAX_NAME for n in names)
    assert safe_name("000000033471-1") == "000000033471-1"  # a safe id stays itself


@pytest.mark.parametrize("mode", ["F", "I", "I;16", "CMYK", "LA", "P", "YCbCr"])
def test_every_image_mode_validation_lets_through_exports(tmp_path, mode):
    import numpy as np

    from align2.data.validate import ValidationConfig, check_image

    gradient = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    if mode == "F":
        image = Image.fromarray(gradient * 0.001, mode="F")  # tiny floats: still a gradient
    elif mode == "I":
        image = Image.fromarray((gradient * 70000).astype(np.int32), mode="I")
    else:
        image = Image.new("RGB", (8, 8), (200, 30, 30)).convert(mode)
        if mode == "P":
            image.info["transparency"] = 0
    path = tmp_path / "images" / f"{mode.replace(';', '')}.tiff"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    assert check_image(path.name, ValidationConfig(image_folder=path.parent))[1] is None
    rows = [
        {
            "id": "odd",
            "image": str(path),
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is it?"},
                {"from": "gpt", "value": "A gradient."},
            ],
            "type": "detail",
        }
    ]
    records = json.loads(export_llava(canonical_dataset(rows), tmp_path / "out").read_text())
    with Image.open(tmp_path / "out" / "images" / records[0]["image"]) as exported:
        assert exported.format == "PNG" and exported.size == (8, 8)
        if mode in ("F", "I"):  # rescaled over its own range, not clipped to black
            assert exported.getextrema() == (0, 255)
