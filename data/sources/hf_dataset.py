"""Any `datasets` dataset (Hub id, local folder or `save_to_disk` output), with a column mapping.

Rows are mapped to LLaVA form and then checked by the same validator as every other source.
Chat-style `messages` ({role, content}) map to LLaVA turns; image placeholders in content
parts become the `<image>` token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
from datasets import Image, List
from huggingface_hub import snapshot_download
from pydantic import ConfigDict

from align2.data.schema import GPT, HUMAN, IMAGE_TOKEN, UNKNOWN_TYPE
from align2.data.sources.digest import folder_sha256
from align2.data.validate import RawRecord
from align2.errors import SourceError

CHAT_ROLES = {"user": HUMAN, "assistant": GPT, HUMAN: HUMAN, GPT: GPT}


@dataclass(frozen=True)
class ColumnMapping:
    """Which column holds what; None picks the usual name when the dataset has it."""

    # a recipe's `columns:` is this class
    __pydantic_config__ = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    id: str | None = None
    """The id column; null: id, else <path>/<row index>."""
    image: str | None = None
    """The image column (one image, or a list holding exactly one); null: image, images."""
    conversations: str | None = None
    """LLaVA turns or chat messages; null: conversations, messages."""
    type: str | None = None
    """The type column; null: type when there is one."""

    def resolve(self, names: list[str]) -> ColumnMapping:
        """The mapping with every column named; a named column must exist."""
        missing = [
            f"{field}={name!r}"
            for field, name in asdict(self).items()
            if name is not None and name not in names
        ]
        if missing:
            raise SourceError(
                f"column(s) {', '.join(missing)} not in the dataset; its columns: "
                f"{', '.join(names)}"
            )

        def first(field, *usual, required=False):
            found = getattr(self, field) or next((n for n in usual if n in names), None)
            if found is None and required:
                raise SourceError(
                    f"no {field} column: the dataset has {', '.join(names)}; name the one that "
                    f"holds it (recipe `columns: {{{field}: ...}}`)"
                )
            return found

        return ColumnMapping(
            id=first("id", "id"),
            image=first("image", "image", "images", required=True),
            conversations=first("conversations", "conversations", "messages", required=True),
            type=first("type", "type"),
        )


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
    """A recipe's `source.dataset:` is this class (unknown keys are refused)."""

    __pydantic_config__ = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: str
    """A Hub id, a local data folder or a save_to_disk folder."""
    split: str = "train"
    """The split to read."""
    config_name: str | None = None
    """The dataset's configuration (subset)."""
    revision: str | None = None
    """A Hub branch, tag or commit."""
    columns: ColumnMapping = field(default_factory=ColumnMapping)
    """Which column holds what."""
    type: str | None = None
    """Forces every row's type."""
    image_folder: Path | None = None
    """The folder relative image paths are read from."""
    streaming: bool = False
    """Read lazily (an IterableDataset), for sources larger than memory."""

    @property
    def name(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf:{self.path}{rev}:{self.split}"

    @property
    def default_type(self) -> str:
        return UNKNOWN_TYPE

    def load(self) -> datasets.Dataset | datasets.IterableDataset:
        local = Path(self.path)
        try:
            if (local / "state.json").is_file() or (local / "dataset_dict.json").is_file():
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
        except (FileNotFoundError, ValueError, KeyError, ConnectionError, OSError) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise SourceError(
                f"cannot open dataset {self.path!r} ({self.split}): {detail}"
            ) from None

    def records(self) -> Iterator[RawRecord]:
        ds = self.load()
        names = ds.column_names
        if names is None:  # some streaming datasets learn their columns from the first row
            ds = ds._resolve_features()
            names = ds.column_names
        cols = self.columns.resolve(list(names))
        ds = _undecoded_images(ds, cols.image)
        for index, row in enumerate(ds):
            record = {
                "id": row.get(cols.id) if cols.id else f"{self.path}/{index}",
                "image": row.get(cols.image),
                "conversations": to_llava_turns(row.get(cols.conversations)),
            }
            if cols.type and row.get(cols.type) is not None:
                record["type"] = row[cols.type]
            yield RawRecord(index, record)

    def provenance(self) -> dict:
        """A local folder by its files' sha256; a Hub dataset by its resolved commit."""
        local = Path(self.path)
        if local.exists():
            return {"source": self.name, "dataset": local.name, "sha256": folder_sha256(local)}
        return {"source": self.name, "dataset": self.path, "revision": self._commit()}

    def _commit(self) -> str:
        try:  # the snapshot folder is named by its commit; offline, the cached one answers
            folder = snapshot_download(
                self.path, repo_type="dataset", revision=self.revision, allow_patterns=["README.md"]
            )
        except Exception as err:  # noqa: BLE001 (any hub failure: say so in the card)
            return f"unresolved ({type(err).__name__})"
        return Path(folder).name


def _undecoded_images(ds, column: str):
    """Read images as {bytes, path} so validation decodes each once, under its own limits."""
    feature = (ds.features or {}).get(column)
    if isinstance(feature, Image):
        return ds.cast_column(column, Image(decode=False))
    if isinstance(feature, List) and isinstance(feature.feature, Image):
        return ds.cast_column(column, List(Image(decode=False)))
    return ds
