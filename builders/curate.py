"""The local engine: dedup -> styles -> score -> select over a canonical `Dataset`, with the
ledger. Every row ends in the `scored` table with its decision and reason: kept, a duplicate
(and of which id), or below a cut; quarantined rows never got here and are in the ledger.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from datasets.fingerprint import Hasher

from align2.builders.capabilities import (
    COLUMN_PREFIX,
    CapabilityConfig,
    read_score_files,
    score_capabilities,
)
from align2.builders.dedup import DedupConfig, find_duplicates
from align2.builders.llm_styler import LLMStyler, LLMStylerConfig
from align2.builders.score import ScoringConfig, score_dataset
from align2.builders.select import (
    Align2Selection,
    Selection,
    policy_budget,
    reason_names,
    select,
)
from align2.builders.styler import label_styles
from align2.data.ledger import Ledger
from align2.data.output import DROPPED_DECISION, KEPT_DECISION
from align2.errors import Align2Error
from align2.progress import stage_bar

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
    capabilities: CapabilityConfig | None = None  # None: no capability scores


@dataclass
class Curation:
    scored: datasets.Dataset  # every valid input row, in input order, with its decision
    ledger: Ledger  # validation's quarantine + dedup + selection: adds up to the input rows
    selection: dict = field(default_factory=dict)  # the policy, its budget, what it kept

    @property
    def kept(self) -> datasets.Dataset:
        return self.scored.filter(lambda d: d == KEPT_DECISION, input_columns="decision")


def decide(scored: datasets.Dataset, selection: Selection) -> list[str | None]:
    """Reason per scored row (None: kept), from the selection policy."""
    return reason_names(select(selection, selection_columns(scored)))


def selection_columns(scored: datasets.Dataset) -> dict:
    """The columns selection policies read, from a scored table."""
    # Arrow format honours an indices mapping (a select/shuffle); `.data` would not.
    table = scored.with_format("arrow")
    columns = {name: table[name] for name in ("id", "type", "style")}  # strings stay in Arrow
    for name in ("question_score", "answer_score"):
        columns[name] = table[name].to_numpy()
    columns["answer_min_score"] = weakest_turn(table["answer_scores"])
    columns["capabilities"] = {
        name: table[name].to_numpy(zero_copy_only=False)
        for name in table.column_names
        if name.startswith(COLUMN_PREFIX)
    }
    return columns


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
    with stage_bar():
        if config.styler is None:
            styled = dataset.map(label_styles, batched=True, desc="styling")
        else:  # small map batches: the progress bar moves with the model's forward passes
            styler = LLMStyler(config.styler)
            fingerprint = Hasher.hash([dataset._fingerprint, styler.identity])
            styled = dataset.map(
                styler,
                batched=True,
                batch_size=64,
                new_fingerprint=fingerprint,
                desc="styling (LLM)",
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
    capabilities = None
    if config.capabilities is not None:
        scored, capabilities = _with_capabilities(
            styled, unique, scored, config.capabilities, validation, Path(work_dir)
        )
    decisions = decide(scored, config.selection)
    for i, reason in zip(unique, decisions, strict=True):
        reasons[i] = reason
    selection = selection_report(config.selection, decisions, capabilities)
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
    return Curation(table, ledger, selection)


def _with_capabilities(styled, unique, scored, config: CapabilityConfig, validation, work_dir):
    """`scored` (the `unique` rows of `styled`) with the 14 capability columns, and a report
    of where they came from."""
    if config.scores is not None:
        # Integer `idx` in mmSSR's files are positions in the source: they name pool rows
        # only when validation quarantined nothing.
        by_position = validation.n_quarantined == 0
        columns, styles, counts = read_score_files(config.scores, styled["id"], by_position)
        for name, values in columns.items():
            values = values[unique].tolist()
            scored = scored.add_column(name, values, feature=datasets.Value("float32"))
        if styles is not None:  # mmSSR's styler's labels where it gave some, else ours
            ours = scored["style"]
            labels = [styles[i] or own for i, own in zip(unique, ours, strict=True)]
            scored = scored.remove_columns("style").add_column(
                "style", labels, feature=datasets.Value("string")
            )
        return scored, {"scores": str(config.scores), "per_file": counts}
    added = score_capabilities(scored, config, work_dir / "capabilities")
    scored = datasets.concatenate_datasets([scored.flatten_indices(), added], axis=1)
    return scored, {"model": config.model, "revision": config.revision, "rows": len(added)}


def selection_report(policy: Selection, decisions: list, capabilities: dict | None) -> dict:
    """What the policy was asked for and what it kept: a budget it could not fill shows as
    a shortfall (every candidate taken, or every capability's pool empty)."""
    kept = sum(reason is None for reason in decisions)
    budget = policy_budget(policy, len(decisions))
    settings = {  # JSON has no infinities: an open bound is written as text
        k: v if not isinstance(v, float) or math.isfinite(v) else str(v)
        for k, v in dataclasses.asdict(policy).items()
    }
    return {
        "policy": {"name": type(policy).__name__, **settings},
        "scored_rows": len(decisions),
        "budget": budget,
        "kept": kept,
        "shortfall": None if budget is None else budget - kept,
        "capabilities": capabilities,
    }


def _with_decisions(styled, scored, unique, reasons, duplicate_of) -> datasets.Dataset:
    """All rows in input order: scored rows as scored (a turn's best candidate may have
    replaced its answer), duplicates as they came with null scores; decisions for all."""
    scored_rows = set(unique)
    duplicates = [i for i in range(len(reasons)) if i not in scored_rows]
    unscored = styled.select(duplicates)
    for name, feature in scored.features.items():
        if name not in unscored.column_names:  # what scoring added: null for duplicates
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
