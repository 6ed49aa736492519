"""Exports in the consumers' own conventions:

- `llava_json`: `llava.json` (a list of {id, image, conversations, type}, `id` as the source
  gave it) + `images/`, the layout LLaVA's training scripts read (`--data_path llava.json
  --image_folder images`);
- `messages`: Parquet with `messages` ({role, content: [{type: image} | {type: text, text}]})
  and `images` (a list of images), the layout TRL's SFTTrainer takes for vision models.

File names come from row ids, which are data: they are reduced to a safe character set (with
a short hash when that changed them), so no id can write outside the export folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from align2.data.output import write_parquet
from align2.data.schema import GPT, IMAGE_TOKEN
from align2.progress import stage_bar

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


MAX_NAME = 120


def safe_name(row_id: str) -> str:
    """A file name for a row id: safe characters, at most MAX_NAME of them, distinct for
    distinct ids (an id that had to change keeps a hash of the original at the end)."""
    name = _UNSAFE.sub("_", row_id).lstrip(".") or "row"
    if name == row_id and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(row_id.encode()).hexdigest()[:16]
    return f"{name[: MAX_NAME - len(digest) - 1]}-{digest}"


PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}


def png_ready(image: Image.Image) -> Image.Image:
    """An image PNG can hold, whatever mode validation let through: 32-bit integer and float
    pixels (mode I, F: TIFFs from scientific sources) are rescaled to 8 bits over their own
    range; CMYK, YCbCr and the like become RGB (RGBA where there is transparency)."""
    if image.mode in PNG_MODES:
        return image
    if image.mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(np.nanmin(pixels)), float(np.nanmax(pixels))
        scaled = (pixels - low) / (high - low) * 255 if high > low else np.zeros_like(pixels)
        return Image.fromarray(np.nan_to_num(scaled).astype(np.uint8), mode="L")
    transparent = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if transparent else "RGB")


def _image_file(image: dict, folder: Path, row_id: str) -> str:
    """Write one image (bytes as published) and return its name; PNG when re-encoding."""
    data = image.get("bytes")
    if data is None:
        data = Path(image["path"]).read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        suffix = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}.get(im.format or "", ".png")
        if suffix == ".png" and im.format != "PNG":
            buffer = io.BytesIO()
            png_ready(im).save(buffer, format="PNG")
            data = buffer.getvalue()
    name = safe_name(row_id) + suffix
    (folder / name).write_bytes(data)
    return name


def export_llava(dataset: datasets.Dataset, out: Path) -> Path:
    out = Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = dataset.cast_column("image", datasets.Image(decode=False))
    # LLaVA's own ids come back (image ids, shared by an image's rows); image files are
    # named by the unique key, so no two rows write one file.
    records = [
        {
            "id": row["source_id"],
            "image": _image_file(row["image"], images, row["id"]),
            "conversations": row["conversations"],
            "type": row["type"],
        }
        for row in rows.select_columns(["id", "source_id", "image", "conversations", "type"])
    ]
    path = out / "llava.json"
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def to_messages(conversations: list[dict]) -> list[dict]:
    """LLaVA turns -> chat messages; the image sits where `<image>` was."""
    messages = []
    for turn in conversations:
        role = "assistant" if turn["from"] == GPT else "user"
        value = turn["value"]
        if IMAGE_TOKEN in value:
            before, _, after = value.partition(IMAGE_TOKEN)
            parts = [{"type": "text", "text": before.strip()}, {"type": "image"}]
            parts += [{"type": "text", "text": after.strip()}]
            content = [p for p in parts if p["type"] == "image" or p["text"]]
        else:
            content = [{"type": "text", "text": value}]
        messages.append({"role": role, "content": content})
    return messages


MESSAGE_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "messages": datasets.List(
            {
                "role": datasets.Value("string"),
                "content": datasets.List(
                    {"type": datasets.Value("string"), "text": datasets.Value("string")}
                ),
            }
        ),
        "images": datasets.List(datasets.Image()),
    }
)


def export_messages(dataset: datasets.Dataset, out: Path) -> Path:
    def convert(batch):
        return {
            "id": batch["id"],
            "messages": [to_messages(c) for c in batch["conversations"]],
            "images": [[image] for image in batch["image"]],
        }

    rows = dataset.cast_column("image", datasets.Image(decode=False))
    with stage_bar():
        converted = rows.map(
            convert,
            batched=True,
            remove_columns=rows.column_names,
            features=MESSAGE_FEATURES,
            desc="messages export",
        )
    return write_parquet(converted, Path(out) / "train-00000-of-00001.parquet")


def export(dataset: datasets.Dataset, formats: tuple[str, ...], out: Path) -> dict[str, Path]:
    writers = {"llava_json": export_llava, "messages": export_messages}
    return {f: writers[f](dataset, Path(out) / f) for f in formats}
