"""Exports loaded back with their consumers' conventions: LLaVA's json + image folder, and
TRL's `messages` + `images` (one image placeholder per image)."""

import json

import datasets
from helpers import canonical_dataset
from PIL import Image

from align2.builders.exports import export_llava, export_messages, to_messages


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
