"""Any `datasets` dataset (Hub id, local folder or `save_to_disk` output), with a column mapping.

Rows are mapped to LLaVA form and then checked by the same validator as every other source.
Chat-style `messages` ({role, content}) map to LLaVA turns; image placeholders in content
parts become the `<image>` token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from datasets import Image, List

from align2.builders.schema import GPT, HUMAN, IMAGE_TOKEN, UNKNOWN_TYPE
from align2.builders.validate import RawRecord

CHAT_ROLES = {"user": HUMAN, "assistant": GPT, HUMAN: HUMAN, GPT: GPT}


@dataclass(frozen=True)
class ColumnMapping:
    id: str | None = "id"  # None: ids are "<source>/<row index>"
    image: str = "image"  # one image, or a list column holding exactly one (e.g. "images")
    conversations: str = "conversations"  # LLaVA {from, value} turns or chat {role, content}
    type: str | None = "type"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if part.get("type") == "image":
            parts.append(IMAGE_TOKEN)
        elif part.get("type") == "text":
            parts.append(part.get("text") or "")
    return "\n".join(parts)


def to_llava_turns(turns: Any) -> Any:
    """Chat messages -> LLaVA turns; LLaVA turns (and anything malformed) pass through."""
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
        return turns
    if "role" not in turns[0]:
        return turns
    # Unknown roles (e.g. "system") pass through unmapped so validation names them.
    out = [
        {
            "from": CHAT_ROLES.get(t.get("role"), t.get("role")),
            "value": _content_text(t.get("content")),
        }
        for t in turns
    ]
    # String-content chats carry no placeholder: the image belongs to the first user turn.
    if not any(IMAGE_TOKEN in t["value"] for t in out) and out[0]["from"] == HUMAN:
        out[0] = {**out[0], "value": f"{IMAGE_TOKEN}\n{out[0]['value']}"}
    return out


@dataclass(frozen=True)
class HFDatasetSource:
    path: str  # Hub id, local data folder, or a `save_to_disk` folder
    split: str = "train"
    config_name: str | None = None
    revision: str | None = None
    columns: ColumnMapping = field(default_factory=ColumnMapping)
    type: str | None = None  # forces every row's type
    image_folder: Path | None = None  # for rows whose image is a relative path
    streaming: bool = False  # read lazily (IterableDataset) for sources larger than memory

    @property
    def name(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf:{self.path}{rev}:{self.split}"

    @property
    def default_type(self) -> str:
        return UNKNOWN_TYPE

    def load(self) -> datasets.Dataset | datasets.IterableDataset:
        local = Path(self.path)
        if (local / "state.json").is_file() and (local / "dataset_info.json").is_file():
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[self.split]
            return ds.to_iterable_dataset() if self.streaming else ds
        return datasets.load_dataset(
            self.path,
            self.config_name,
            split=self.split,
            revision=self.revision,
            streaming=self.streaming,
        )

    def records(self) -> Iterator[RawRecord]:
        ds = _undecoded_images(self.load(), self.columns.image)
        cols = self.columns
        for index, row in enumerate(ds):
            record = {
                "id": row.get(cols.id) if cols.id else f"{self.path}/{index}",
                "image": row.get(cols.image),
                "conversations": to_llava_turns(row.get(cols.conversations)),
            }
            if cols.type and row.get(cols.type) is not None:
                record["type"] = row[cols.type]
            yield RawRecord(index, record)


def _undecoded_images(ds, column: str):
    """Read images as {bytes, path} so validation decodes each once, under its own limits."""
    feature = (ds.features or {}).get(column)
    if isinstance(feature, Image):
        return ds.cast_column(column, Image(decode=False))
    if isinstance(feature, List) and isinstance(feature.feature, Image):
        return ds.cast_column(column, List(Image(decode=False)))
    return ds
