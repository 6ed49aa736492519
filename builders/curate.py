"""The local engine: dedup -> styles -> score -> select over a canonical `Dataset`, with the
ledger. Every row ends in the `scored` table with its decision and reason: kept, a duplicate
(and of which id), or below a cut; quarantined rows never got here and are in the ledger.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from datasets.fingerprint import Hasher

from align2.builders.dedup import DedupConfig, find_duplicates
from align2.builders.ledger import Ledger
from align2.builders.llm_styler import LLMStyler, LLMStylerConfig
from align2.builders.score import SCORE_FEATURES, ScoringConfig, score_dataset
from align2.builders.select import Align2Selection, Selection, reason_names, select
from align2.builders.styler import label_styles
from align2.errors import Align2Error

KEPT_DECISION, DROPPED_DECISION = "kept", "dropped"
DECISION_FEATURES = {
    "decision": datasets.Value("string"),
    "reason": datasets.Value("string"),
    "duplicate_of": datasets.Value("string"),
}


@dataclass(frozen=True)
class CurationConfig:
    scoring: ScoringConfig
    selection: Selection = field(default_factory=Align2Selection)
    dedup: DedupConfig | None = field(default_factory=DedupConfig)  # None: no dedup
    styler: LLMStylerConfig | None = None  # None: the training-free rules (styler.py)


@dataclass
class Curation:
    scored: datasets.Dataset  # every valid input row, in input order, with its decision
    ledger: Ledger  # validation's quarantine + dedup + selection: adds up to the input rows

    @property
    def kept(self) -> datasets.Dataset:
        return self.scored.filter(lambda d: d == KEPT_DECISION, input_columns="decision")


def decide(scored: datasets.Dataset, selection: Selection) -> list[str | None]:
    """Reason per scored row (None: kept), from the selection policy."""
    # Arrow format honours an indices mapping (a select/shuffle); `.data` would not.
    table = scored.with_format("arrow")
    columns = {name: table[name] for name in ("id", "type", "style")}  # strings stay in Arrow
    for name in ("question_score", "answer_score"):
        columns[name] = table[name].to_numpy()
    columns["answer_min_score"] = weakest_turn(table["answer_scores"])
    return reason_names(select(selection, columns))


def weakest_turn(answer_scores: pa.ChunkedArray) -> np.ndarray:
    """Each row's lowest turn score (every scored row has at least one turn)."""
    lists = answer_scores.combine_chunks()
    offsets = lists.offsets.to_numpy()  # of a slice, they start where the slice does
    return np.minimum.reduceat(lists.flatten().to_numpy(), offsets[:-1] - offsets[0])


ENGINES = ("local", "ray")


def curate(
    dataset: datasets.Dataset,
    config: CurationConfig,
    work_dir: Path,
    validation: Ledger,
    *,
    engine: str = "local",
    num_proc: int = 1,
) -> Curation:
    """Curate validated canonical rows; `validation` is the ledger of the load (quarantine).

    The engine decides only where scoring runs: `local` maps with `datasets` in this
    process (GPUs through `with_rank`), `ray` with Ray Data over an actor pool. Dedup hashes
    in `num_proc` processes."""
    if engine not in ENGINES:
        raise Align2Error(f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    if config.styler is None:
        styled = dataset.map(label_styles, batched=True, desc="styling")
    else:  # small map batches: the progress bar moves with the model's forward passes
        styler = LLMStyler(config.styler)
        fingerprint = Hasher.hash([dataset._fingerprint, styler.identity])
        styled = dataset.map(
            styler, batched=True, batch_size=64, new_fingerprint=fingerprint, desc="styling (LLM)"
        )
    if config.dedup is not None:
        dedup = find_duplicates(styled, config.dedup, num_proc=num_proc)
        reasons, duplicate_of = dedup.reasons, dedup.duplicate_of
    else:
        reasons, duplicate_of = [None] * len(styled), [None] * len(styled)
    unique = [i for i, r in enumerate(reasons) if r is None]
    if engine == "ray":
        from align2.builders.ray_engine import score_with_ray as score
    else:
        score = score_dataset
    scored = score(styled.select(unique), config.scoring, Path(work_dir) / "scores")
    for i, reason in zip(unique, decide(scored, config.selection), strict=True):
        reasons[i] = reason
    # Validation "kept" the rows that reached us; from here each ends kept or dropped.
    if validation.kept != len(dataset):
        raise ValueError(
            f"validation passed {validation.kept} rows, the dataset has {len(dataset)}"
        )
    ledger = Ledger(total=validation.n_quarantined, quarantined=Counter(validation.quarantined))
    for reason in reasons:
        if reason is None:
            ledger.keep()
        else:
            ledger.drop(reason)
    ledger.check()
    table = _with_decisions(styled, scored, unique, reasons, duplicate_of)
    return Curation(table, ledger)


def _with_decisions(styled, scored, unique, reasons, duplicate_of) -> datasets.Dataset:
    """All rows in input order: scored rows as scored (a turn's best candidate may have
    replaced its answer), duplicates as they came with null scores; decisions for all."""
    scored_rows = set(unique)
    duplicates = [i for i in range(len(reasons)) if i not in scored_rows]
    unscored = styled.select(duplicates)
    for name, feature in SCORE_FEATURES.items():
        unscored = unscored.add_column(name, [None] * len(duplicates), feature=feature)
    rows = datasets.concatenate_datasets([scored, unscored.cast(scored.features)])
    order = unique + duplicates
    decisions = {
        "decision": [KEPT_DECISION if reasons[i] is None else DROPPED_DECISION for i in order],
        "reason": [reasons[i] for i in order],
        "duplicate_of": [duplicate_of[i] for i in order],
    }
    for name, values in decisions.items():
        rows = rows.add_column(name, values, feature=DECISION_FEATURES[name])
    return rows.select(np.argsort(order, kind="stable"))
