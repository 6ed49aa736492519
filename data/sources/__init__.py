"""Sources yield raw records; `load_canonical` validates them into canonical rows.

A source is anything with `name`, `default_type`, `type` (a forced type or None),
`image_folder` (where its relative image paths resolve, or None), `records()` and
`provenance()`; the LLaVA JSON and `datasets` sources below are the two built in. One build
may read several sources: their rows share one key space (`RowKeys`).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import datasets
import pyarrow as pa
from datasets.arrow_writer import ArrowWriter
from tqdm.auto import tqdm

from align2.data.ledger import Ledger
from align2.data.schema import FEATURES
from align2.data.sources.digest import file_sha256
from align2.data.sources.hf_dataset import ColumnMapping, HFDatasetSource
from align2.data.sources.llava_json import LlavaJsonSource, write_llava_json
from align2.data.validate import (
    Quarantine,
    RawRecord,
    RowKeys,
    ValidationConfig,
    validate,
)
from align2.errors import SourceError

WRITER_BATCH_ROWS = 1000  # rows held in memory before they are written out


class Source(Protocol):
    name: str
    default_type: str
    type: str | None
    image_folder: Path | None

    def records(self): ...  # Iterator[RawRecord]

    def provenance(self) -> dict: ...  # what the card names: file + sha256, or id + commit


def _as_list(sources) -> list:
    return list(sources) if isinstance(sources, Sequence) else [sources]


def canonical_rows(sources, config: ValidationConfig, quarantine: Quarantine, *, num_proc: int = 1):
    """Every source's valid rows, in order, with keys unique across all of them; `num_proc`
    processes check them."""
    keys = RowKeys(strict=config.unique_ids == "strict")
    sources = _as_list(sources)
    for source in sources:
        folder = source.image_folder
        if folder is not None and not Path(folder).is_dir():
            raise SourceError(f"image folder {folder} does not exist ({source.name})")
    for source in sources:
        folder = source.image_folder if source.image_folder is not None else config.image_folder
        yield from validate(
            source.records(),
            replace(config, image_folder=folder),
            quarantine,
            source=source.name,
            default_type=source.default_type,
            force_type=source.type,
            keys=keys,
            num_proc=num_proc,
        )
    quarantine.repeated_ids += keys.n_repeated


def load_canonical(
    sources: Source | Sequence[Source],
    config: ValidationConfig,
    quarantine: Quarantine,
    *,
    path: Path | None = None,
    num_proc: int = 1,
) -> datasets.Dataset:
    """Validated canonical rows as a `Dataset`, written in batches as they are read (a source
    of any size, streaming ones included, is never held in memory): to the Arrow file `path`
    (memory-mapped), or to memory when `path` is None. Its fingerprint is the file's sha256,
    so caches keyed by it follow the content, not the path."""
    if path is None:
        stream = pa.BufferOutputStream()
        writer = ArrowWriter(features=FEATURES, stream=stream, writer_batch_size=WRITER_BATCH_ROWS)
    else:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside, then renamed: a killed run never leaves a partial file behind.
        partial = Path(tempfile.mkstemp(prefix=".canonical-", dir=path.parent)[1])
        writer = ArrowWriter(
            features=FEATURES, path=str(partial), writer_batch_size=WRITER_BATCH_ROWS
        )
    with writer:
        for row in canonical_rows(sources, config, quarantine, num_proc=num_proc):
            writer.write(row)
        writer.finalize()
    if path is None:
        data = stream.getvalue()
        dataset = datasets.Dataset(datasets.table.InMemoryTable.from_buffer(data))
        digest = hashlib.sha256(memoryview(data)).hexdigest()
    else:
        partial.replace(path)
        dataset = datasets.Dataset.from_file(str(path))
        digest = file_sha256(path)
    dataset._fingerprint = digest
    return dataset


@dataclass(frozen=True)
class ValidationResult:
    ledger: Ledger
    report: dict


def validate_source(
    sources: Source | Sequence[Source],
    config: ValidationConfig,
    quarantine_path: Path,
    *,
    num_proc: int = 1,
) -> ValidationResult:
    """Validate every row of the sources without building a dataset; quarantine to a file."""
    sources = _as_list(sources)
    names = ", ".join(source.name for source in sources)
    quarantine = Quarantine(path=Path(quarantine_path))
    try:
        rows = canonical_rows(sources, config, quarantine, num_proc=num_proc)
        for _ in tqdm(rows, desc=f"validating {names}", unit=" rows"):
            pass
    finally:
        quarantine.close()
    ledger = quarantine.ledger
    ledger.check()
    report = {
        "source": names,
        "total": ledger.total,
        "valid": ledger.kept,
        "quarantined": ledger.n_quarantined,
        "reasons": dict(sorted(ledger.quarantined.items())),
        # Information, not a problem: LLaVA's ids are image ids (see RowKeys).
        "repeated_ids": quarantine.repeated_ids,
        "quarantine_file": str(quarantine_path),
    }
    return ValidationResult(ledger, report)


__all__ = [
    "ValidationResult",
    "validate_source",
    "ColumnMapping",
    "HFDatasetSource",
    "LlavaJsonSource",
    "RawRecord",
    "Source",
    "canonical_rows",
    "load_canonical",
    "write_llava_json",
]
