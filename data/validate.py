"""Validation and quarantine: every input row ends valid or quarantined with a reason.

Checks are small pure functions that return a `Problem` or None; `validate` owns the loop,
the row keys and the counts, so a new check is one function and one reason.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from align2.data.ledger import Ledger
from align2.data.schema import GPT, HUMAN, IMAGE_TOKEN, ROLES


class Reason(str, Enum):
    """Machine-readable quarantine reasons (the value is what reports and files carry)."""

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    BAD_FIELD_TYPE = "bad_field_type"
    NON_UTF8_TEXT = "non_utf8_text"
    UNKNOWN_ROLE = "unknown_role"
    EMPTY_TURN = "empty_turn"
    TURNS_NOT_ALTERNATING = "turns_not_alternating"
    IMAGE_TOKEN_COUNT = "image_token_count"
    IMAGE_TOKEN_POSITION = "image_token_position"
    IMAGE_COUNT = "image_count"
    IMAGE_PATH_UNSAFE = "image_path_unsafe"
    IMAGE_MISSING = "image_missing"
    IMAGE_CORRUPT = "image_corrupt"
    IMAGE_TOO_LARGE = "image_too_large"
    DUPLICATE_ID = "duplicate_id"
    CANDIDATE_SCORE_MISMATCH = "candidate_score_mismatch"  # annotations


@dataclass(frozen=True)
class Problem:
    reason: Reason
    detail: str


@dataclass(frozen=True)
class RawRecord:
    """One record as a source read it. `problem` is set when it could not even be parsed."""

    index: int
    record: Any
    problem: Problem | None = None


@dataclass(frozen=True)
class ValidationConfig:
    # Relative image paths resolve here and may never leave it (`../`, absolute, symlinks).
    image_folder: Path | None = None
    # Stricter than PIL's own decompression-bomb guard (~89 Mpx), which stays switched on.
    max_image_pixels: int = 4096 * 4096
    # A full decode catches truncated files that a header read misses (it costs a decode each).
    decode_images: bool = True
    # "derive": a repeated id gets a derived key (RowKeys); "strict": it is quarantined.
    unique_ids: Literal["derive", "strict"] = "derive"


@dataclass
class RowKeys:
    """Row keys, unique within a build. In LLaVA-Instruct (and many LLaVA-format sets) `id` is
    the image id, shared by the conversation, detail and reasoning rows of one image: a repeat
    is not an error there. The first row keeps its id; later ones get `<id>-1`, `<id>-2`, ...
    in source order (skipping keys already taken), and every row keeps its `source_id`."""

    strict: bool = False
    first_row: dict[str, int] = field(default_factory=dict)  # source id -> its first row
    next_suffix: Counter = field(default_factory=Counter)  # source id -> last suffix given
    taken: set[str] = field(default_factory=set)
    n_repeated: int = 0  # rows whose source id an earlier row had

    def key(self, source_id: str, index: int) -> str | Problem:
        if source_id not in self.first_row:
            self.first_row[source_id] = index
            if source_id not in self.taken:
                self.taken.add(source_id)
                return source_id
            # else an earlier row's derived key is this id: this row gets one too
        elif self.strict:
            first = self.first_row[source_id]
            return Problem(Reason.DUPLICATE_ID, f"id {source_id!r} already used by row {first}")
        else:
            self.n_repeated += 1
        n = self.next_suffix[source_id] + 1
        while f"{source_id}-{n}" in self.taken:
            n += 1
        self.next_suffix[source_id] = n
        self.taken.add(f"{source_id}-{n}")
        return f"{source_id}-{n}"


REQUIRED_FIELDS = ("id", "image", "conversations")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _has_surrogates(text: str) -> bool:
    # Sources decode with errors="surrogateescape": invalid UTF-8 bytes become lone surrogates.
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def check_record(record: Any) -> Problem | None:
    """Structure and text of one LLaVA-form record (images are checked separately)."""
    if not isinstance(record, dict):
        return Problem(Reason.NOT_AN_OBJECT, f"expected a JSON object, got {type(record).__name__}")
    missing = [f for f in REQUIRED_FIELDS if record.get(f) in (None, "", [])]
    if missing:
        return Problem(Reason.MISSING_FIELD, f"missing required field(s): {', '.join(missing)}")
    if not isinstance(record["id"], (str, int)) or isinstance(record["id"], bool):
        return Problem(Reason.BAD_FIELD_TYPE, f"`id` must be a string, got {record['id']!r}")
    if record.get("type") is not None and not isinstance(record["type"], str):
        return Problem(Reason.BAD_FIELD_TYPE, f"`type` must be a string, got {record['type']!r}")
    turns = record["conversations"]
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return Problem(Reason.BAD_FIELD_TYPE, "`conversations` must be a list of {from, value}")
    for i, turn in enumerate(turns):
        if not isinstance(turn.get("value"), str):
            return Problem(Reason.BAD_FIELD_TYPE, f"turn {i}: `value` must be a string")
    for text in _strings([record["id"], record.get("type"), record["image"], turns]):
        if _has_surrogates(text):
            return Problem(Reason.NON_UTF8_TEXT, f"text is not valid UTF-8: {text[:60]!r}")
    for i, turn in enumerate(turns):
        if turn.get("from") not in ROLES:
            return Problem(
                Reason.UNKNOWN_ROLE, f"turn {i}: role {turn.get('from')!r}, allowed: human, gpt"
            )
    for i, turn in enumerate(turns):
        if not turn["value"].strip():
            return Problem(Reason.EMPTY_TURN, f"turn {i} ({turn['from']}) is empty")
    roles = [t["from"] for t in turns]
    expected = [HUMAN if i % 2 == 0 else GPT for i in range(len(turns))]
    if roles != expected or len(turns) % 2:
        return Problem(
            Reason.TURNS_NOT_ALTERNATING,
            f"roles {roles}: turns must alternate human/gpt, starting with human, ending with gpt",
        )
    counts = [t["value"].count(IMAGE_TOKEN) for t in turns]
    if sum(counts) != 1:
        return Problem(Reason.IMAGE_TOKEN_COUNT, f"{sum(counts)} {IMAGE_TOKEN} tokens, expected 1")
    if counts[0] != 1:
        return Problem(
            Reason.IMAGE_TOKEN_POSITION, f"{IMAGE_TOKEN} is in turn {counts.index(1)}, not turn 0"
        )
    return None


def resolve_image_path(path: str, image_folder: Path | None) -> tuple[Path | None, Problem | None]:
    """Resolve a path from data inside `image_folder`; it may never escape it."""
    if image_folder is None:
        return None, Problem(
            Reason.IMAGE_MISSING, f"image {path!r} is a path but no image folder was given"
        )
    if os.path.isabs(path) or Path(path).drive:
        return None, Problem(Reason.IMAGE_PATH_UNSAFE, f"absolute image path {path!r}")
    root = image_folder.resolve()
    resolved = (root / path).resolve()  # follows symlinks, so a link pointing out is caught too
    if not resolved.is_relative_to(root):
        return None, Problem(Reason.IMAGE_PATH_UNSAFE, f"image path {path!r} escapes {root}")
    if not resolved.is_file():
        return None, Problem(Reason.IMAGE_MISSING, f"image file {path!r} not found in {root}")
    return resolved, None


def check_image_file(source: Path | bytes, config: ValidationConfig) -> Problem | None:
    """Open (and optionally decode) an image without ever disabling PIL's bomb guard."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            width, height = img.size
            if width * height > config.max_image_pixels:
                return Problem(
                    Reason.IMAGE_TOO_LARGE,
                    f"{width}x{height} = {width * height} px > limit {config.max_image_pixels}",
                )
            if config.decode_images:
                img.load()
    except Image.DecompressionBombError as err:
        return Problem(Reason.IMAGE_TOO_LARGE, str(err))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return Problem(Reason.IMAGE_CORRUPT, f"cannot decode image: {err}")
    return None


def check_image(image: Any, config: ValidationConfig) -> tuple[Any, Problem | None]:
    """Validate one image value; return it in the form the canonical `Image()` column takes."""
    if isinstance(image, list):
        if len(image) != 1:
            return None, Problem(Reason.IMAGE_COUNT, f"{len(image)} images, expected 1")
        image = image[0]
    if isinstance(image, Image.Image):
        width, height = image.size
        if width * height > config.max_image_pixels:
            return None, Problem(Reason.IMAGE_TOO_LARGE, f"{width}x{height} px")
        return image, None
    if isinstance(image, dict) and image.get("bytes"):
        return image, check_image_file(image["bytes"], config)
    if isinstance(image, dict) and image.get("path"):
        image = image["path"]
    if not isinstance(image, str):
        return None, Problem(
            Reason.BAD_FIELD_TYPE, f"unsupported image value {type(image).__name__}"
        )
    path, problem = resolve_image_path(image, config.image_folder)
    if problem:
        return None, problem
    return str(path), check_image_file(path, config)


def jsonable(value: Any) -> Any:
    """The original record in a form JSON can hold (embedded images are summarised)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, Image.Image):
        return f"<image {value.width}x{value.height} {value.mode}>"
    return value


@dataclass
class Quarantine:
    """Collects quarantined rows, in memory or appended to a JSON Lines file, and the counts."""

    path: Path | None = None
    ledger: Ledger = field(default_factory=Ledger)
    entries: list[dict] = field(default_factory=list)
    repeated_ids: int = 0  # valid rows whose id an earlier row had (information, not a drop)

    def __post_init__(self):
        self._file = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")

    def add(self, index: int, record: Any, problem: Problem, source: str) -> None:
        self.ledger.quarantine(problem.reason.value)
        entry = {
            "source": source,
            "index": index,
            "id": record.get("id") if isinstance(record, dict) else None,
            "reason": problem.reason.value,
            "detail": problem.detail,
            "record": jsonable(record),
        }
        if self._file is None:
            self.entries.append(entry)
        else:
            # ensure_ascii keeps undecodable bytes visible as \udcXX escapes instead of failing.
            self._file.write(json.dumps(entry, ensure_ascii=True) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def check_row(raw: RawRecord, config: ValidationConfig) -> tuple[Any, Problem | None]:
    """(the image in canonical form, None) for a valid record, else (None, its problem)."""
    problem = raw.problem or check_record(raw.record)
    if problem is not None:
        return None, problem
    return check_image(raw.record["image"], config)


def _check_chunk(chunk: list[RawRecord], config: ValidationConfig) -> list:
    return [check_row(raw, config) for raw in chunk]


CHUNK_ROWS = 64  # records a worker checks per task
IN_FLIGHT = 4  # tasks per worker queued ahead: bounded memory for a source of any size


def checked_rows(records: Iterable[RawRecord], config: ValidationConfig, num_proc: int = 1):
    """(record, image, problem) in source order. With `num_proc` > 1, worker processes do the
    checks (decoding images is most of validation's time); a few chunks are in flight at a
    time, so a stream is never read far ahead."""
    if num_proc <= 1:
        for raw in records:
            yield (raw, *check_row(raw, config))
        return
    records = iter(records)
    # fork: workers start in milliseconds and need nothing re-imported; they only run PIL.
    with multiprocessing.get_context("fork").Pool(num_proc) as pool:
        pending: deque = deque()
        while True:
            while len(pending) < num_proc * IN_FLIGHT:
                chunk = list(islice(records, CHUNK_ROWS))
                if not chunk:
                    break
                pending.append((chunk, pool.apply_async(_check_chunk, (chunk, config))))
            if not pending:
                return
            chunk, result = pending.popleft()
            for raw, (image, problem) in zip(chunk, result.get(), strict=True):
                yield raw, image, problem


def validate(
    records: Iterable[RawRecord],
    config: ValidationConfig,
    quarantine: Quarantine,
    *,
    source: str,
    default_type: str,
    force_type: str | None = None,
    keys: RowKeys | None = None,
    num_proc: int = 1,
) -> Iterator[dict]:
    """Yield canonical rows; quarantine the rest. `keys` is shared by every source of a build;
    `num_proc` processes check the rows (keys and counts stay in this one, in source order)."""
    keys = keys if keys is not None else RowKeys(strict=config.unique_ids == "strict")
    for raw, image, problem in checked_rows(records, config, num_proc):
        if problem is None:
            source_id = str(raw.record["id"])
            key = keys.key(source_id, raw.index)
            if isinstance(key, Problem):
                problem = key
        if problem is not None:
            quarantine.add(raw.index, raw.record, problem, source)
            continue
        quarantine.ledger.keep()
        yield {
            "id": key,
            "source_id": source_id,
            "image": image,
            "conversations": [
                {"from": t["from"], "value": t["value"]} for t in raw.record["conversations"]
            ],
            "type": force_type or raw.record.get("type") or default_type,
            "source": source,
        }
