"""LLaVA JSON / JSON Lines + an image folder (LLaVA-Instruct-158k conventions)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from align2.data.schema import type_from_filename
from align2.data.sources.digest import file_sha256
from align2.data.validate import Problem, RawRecord, Reason
from align2.errors import SourceError


def _decode(data: bytes) -> str:
    # Invalid UTF-8 becomes lone surrogates, so one bad row is quarantined, not the whole file.
    return data.decode("utf-8", errors="surrogateescape")


@dataclass(frozen=True)
class LlavaJsonSource:
    path: Path  # a .json list of records, or .jsonl with one record per line
    image_folder: Path
    type: str | None = None  # forces every row's type; else the row's `type`, else the file name

    @property
    def name(self) -> str:
        return f"llava:{Path(self.path).name}"

    @property
    def default_type(self) -> str:
        return type_from_filename(Path(self.path).name)

    def records(self) -> Iterator[RawRecord]:
        return read_json_records(Path(self.path), what="LLaVA")

    def provenance(self) -> dict:
        return {"source": self.name, "file": Path(self.path).name, "sha256": file_sha256(self.path)}


def read_json_records(path: Path, what: str = "JSON") -> Iterator[RawRecord]:
    """Records of a .json list or a .jsonl file. A malformed .json file is an error naming
    line and column; a malformed .jsonl line comes back as a record with a problem."""
    if not path.is_file():
        raise SourceError(f"{what} file not found: {path}. Pass the path of a .json or .jsonl.")
    if path.suffix == ".jsonl":
        yield from _jsonl_records(path)
        return
    try:
        records = json.loads(_decode(path.read_bytes()))
    except json.JSONDecodeError as err:
        raise SourceError(
            f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}. "
            "The file cannot be read as a whole; fix it (or use JSON Lines, where a bad "
            "line is quarantined on its own) and re-run."
        ) from None
    if not isinstance(records, list):
        raise SourceError(
            f"{path}: expected a JSON list of {what} records, got a {type(records).__name__}."
        )
    for index, record in enumerate(records):
        yield RawRecord(index, record)


def _jsonl_records(path: Path) -> Iterator[RawRecord]:
    with path.open("rb") as f:
        # index = 0-based line number, so an entry points straight at its line.
        for index, line in enumerate(f):
            text = _decode(line).strip()
            if not text:
                continue
            try:
                yield RawRecord(index, json.loads(text))
            except json.JSONDecodeError as err:
                problem = Problem(
                    Reason.MALFORMED_JSON,
                    f"{path.name} line {index + 1}, column {err.colno}: {err.msg}",
                )
                yield RawRecord(index, {"raw": text}, problem)


def write_llava_json(rows: list[dict], path: Path) -> None:
    """Write LLaVA records deterministically (stable key order, UTF-8, trailing newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
