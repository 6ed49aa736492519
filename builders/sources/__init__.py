"""Sources yield raw records; `load_canonical` validates them into canonical rows.

A source is anything with `name`, `default_type`, `type` (a forced type or None) and
`records()`; the LLaVA JSON and `datasets` sources below are the two built in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import datasets
from tqdm.auto import tqdm

from align2.builders.ledger import Ledger
from align2.builders.schema import FEATURES
from align2.builders.sources.hf_dataset import ColumnMapping, HFDatasetSource
from align2.builders.sources.llava_json import LlavaJsonSource, write_llava_json
from align2.builders.validate import Quarantine, RawRecord, ValidationConfig, validate


class Source(Protocol):
    name: str
    default_type: str
    type: str | None

    def records(self): ...  # Iterator[RawRecord]


def _rows(source: Source, config: ValidationConfig, quarantine: Quarantine):
    yield from validate(
        source.records(),
        config,
        quarantine,
        source=source.name,
        default_type=source.default_type,
        force_type=source.type,
    )


def load_canonical(
    source: Source,
    config: ValidationConfig,
    quarantine: Quarantine,
    *,
    streaming: bool = False,
) -> datasets.Dataset | datasets.IterableDataset:
    """Validated canonical rows as a `Dataset` (or a lazy `IterableDataset` when streaming).

    When streaming, rows are validated as they are read, so the quarantine and its ledger
    are complete only once the stream has been consumed.
    """
    if streaming:
        return datasets.IterableDataset.from_generator(
            _rows,
            features=FEATURES,
            gen_kwargs={"source": source, "config": config, "quarantine": quarantine},
        )
    rows = list(_rows(source, config, quarantine))
    if not rows:  # from_list cannot infer an empty table, even with features
        return datasets.Dataset.from_dict({name: [] for name in FEATURES}, features=FEATURES)
    return datasets.Dataset.from_list(rows, features=FEATURES)


@dataclass(frozen=True)
class ValidationResult:
    ledger: Ledger
    report: dict


def validate_source(
    source: Source, config: ValidationConfig, quarantine_path: Path
) -> ValidationResult:
    """Validate every row of a source without building a dataset; quarantine to a file."""
    quarantine = Quarantine(path=Path(quarantine_path))
    try:
        for _ in tqdm(
            _rows(source, config, quarantine), desc=f"validating {source.name}", unit=" rows"
        ):
            pass
    finally:
        quarantine.close()
    ledger = quarantine.ledger
    ledger.check()
    report = {
        "source": source.name,
        "total": ledger.total,
        "valid": ledger.kept,
        "quarantined": ledger.n_quarantined,
        "reasons": dict(sorted(ledger.quarantined.items())),
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
    "load_canonical",
    "write_llava_json",
]
