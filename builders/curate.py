"""Curation: style -> dedup -> score -> capabilities -> select over a canonical `Dataset`,
as stages (stages.py), with the ledger. Every row ends in the `scored` table with its
decision and reason: kept, a duplicate (and of which id), or below a cut; quarantined rows
never got here and are in the ledger.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from datasets.fingerprint import Hasher

from align2.builders import dedup as dedup_module
from align2.builders import select as select_module
from align2.builders import styler as styler_module
from align2.builders.capabilities import (
    COLUMN_PREFIX,
    CapabilityConfig,
    capability_identity,
    read_score_files,
    score_capabilities,
)
from align2.builders.dedup import DedupConfig, find_duplicates
from align2.builders.llm_styler import LLMStyler, LLMStylerConfig
from align2.builders.score import SCORES_FORMAT, ScoringConfig, score_dataset, scoring_identity
from align2.builders.select import (
    Align2Selection,
    Selection,
    policy_budget,
    reason_names,
    select,
)
from align2.builders.stages import Stage, StageInput, StageOutput, run_stages
from align2.builders.styler import label_styles
from align2.data.engines import engine_named
from align2.data.ledger import Ledger
from align2.data.output import KEPT_DECISION
from align2.data.shards import Engine, map_in_shards, with_columns


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
    runs: dict = field(default_factory=dict)  # per stage: computed or cached, seconds

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


STYLE_FEATURES = datasets.Features({"style": datasets.Value("string")})
STYLE_SHARD_ROWS = 20_000  # rows per cached shard of styles


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

    The stages (style, dedup, score, capabilities, select) run in order through the stage
    runner, each cached under its signature. The engine places their row-wise work (styles,
    dedup's hashes, scores, capability scores) in cached shards: `local` maps with
    `datasets` in this process (one process per GPU where there are several; dedup hashes
    in `num_proc` processes), `ray` on Ray Data over an actor pool. Dedup's matching and the
    selection run in this process over the whole pool, on either engine."""
    # Validation "kept" the rows that reached us; from here each ends kept or dropped.
    if validation.kept != len(dataset):
        raise ValueError(
            f"validation passed {validation.kept} rows, the dataset has {len(dataset)}"
        )
    stages = curation_stages(config, Path(work_dir), validation, engine_named(engine), num_proc)
    result = run_stages(dataset, stages, Path(work_dir) / "stages")
    ledger = Ledger(total=validation.n_quarantined, quarantined=Counter(validation.quarantined))
    for reason in result.reasons:
        if reason is None:
            ledger.keep()
        else:
            ledger.drop(reason)
    ledger.check()
    return Curation(result.rows, ledger, result.reports["select"], result.runs)


def curation_stages(
    config: CurationConfig, work_dir: Path, validation: Ledger, engine: Engine, num_proc: int
) -> list[Stage]:
    """The stages a curation config asks for, in order; `engine` places their row-wise work."""
    stages = [_style_stage(config.styler, work_dir / "styles", engine)]
    if config.dedup is not None:
        dedup = config.dedup
        stages.append(
            Stage(
                "dedup",
                dedup,
                lambda rows, _: _dedup(rows, dedup, work_dir / "dedup", engine, num_proc),
                identity=_source(dedup_module),
            )
        )
    stages.append(_score_stage(config.scoring, work_dir / "scores", engine))
    if config.capabilities is not None:
        stages.append(_capability_stage(config.capabilities, validation, work_dir, engine))
    selection = config.selection
    stages.append(
        Stage(
            "select",
            selection,
            lambda rows, given: _select(rows, selection, given),
            identity=[type(selection).__name__, _source(select_module)],
        )
    )
    return stages


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


def _source(module) -> str:
    """A module's code, as a stage identity: changed code computes anew."""
    return Hasher.hash(inspect.getsource(module))


def _style_stage(config: LLMStylerConfig | None, cache_dir: Path, engine: Engine) -> Stage:
    if config is None:
        styler, identity, batch_size = label_styles, _source(styler_module), 1000
    else:  # small map batches: the bar moves with the model's forward passes
        styler = LLMStyler(config)
        identity, batch_size = styler.identity, 64

    def styled(rows: datasets.Dataset, _) -> StageOutput:
        styles = map_in_shards(
            rows.select_columns(["conversations"]),
            styler,
            features=STYLE_FEATURES,
            key=identity,
            cache_dir=cache_dir,
            name="styles",
            rows_per_shard=STYLE_SHARD_ROWS,
            batch_size=batch_size,
            engine=engine,
        )
        return StageOutput(with_columns(rows, styles, cache_dir))

    return Stage("style", config or RuleStyles(), styled, identity=identity)


@dataclass(frozen=True)
class RuleStyles:
    """The training-free style rules (styler.py): nothing to set."""


def _dedup(rows, config: DedupConfig, cache_dir: Path, engine: Engine, num_proc: int):
    found = find_duplicates(rows, config, num_proc=num_proc, cache_dir=cache_dir, engine=engine)
    return StageOutput(reasons=found.reasons, duplicate_of=found.duplicate_of)


def _score_stage(config: ScoringConfig, cache_dir: Path, engine: Engine) -> Stage:
    return Stage(
        "score",
        config,
        lambda rows, _: StageOutput(score_dataset(rows, config, cache_dir, engine)),
        identity=[SCORES_FORMAT, *scoring_identity(config)],
        writes=("conversations",),  # a turn's best candidate may replace its answer
    )


def _capability_stage(
    config: CapabilityConfig, validation: Ledger, work_dir: Path, engine: Engine
) -> Stage:
    """mmSSR's 14 capability columns, from its score files or a prompted model."""

    def scored(rows: datasets.Dataset, given: StageInput) -> StageOutput:
        if config.scores is None:
            added = score_capabilities(rows, config, work_dir / "capabilities", engine)
            rows = with_columns(rows, added, work_dir / "capabilities")
            report = {"model": config.model, "revision": config.revision, "rows": len(added)}
            return StageOutput(rows, report=report)
        # Integer `idx` in mmSSR's files are positions in the source: they name pool rows
        # only when validation quarantined nothing.
        by_position = validation.n_quarantined == 0
        columns, styles, counts = read_score_files(config.scores, given.pool_ids, by_position)
        for name, values in columns.items():
            values = values[given.positions].tolist()
            rows = rows.add_column(name, values, feature=datasets.Value("float32"))
        if styles is not None:  # mmSSR's styler's labels where it gave some, else ours
            ours = rows["style"]
            labels = [styles[i] or own for i, own in zip(given.positions, ours, strict=True)]
            rows = rows.remove_columns("style").add_column(
                "style", labels, feature=datasets.Value("string")
            )
        return StageOutput(rows, report={"scores": str(config.scores), "per_file": counts})

    return Stage(
        "capabilities", config, scored, identity=capability_identity(config), writes=("style",)
    )


def _select(rows: datasets.Dataset, selection: Selection, given: StageInput) -> StageOutput:
    decisions = decide(rows, selection)
    report = selection_report(selection, decisions, given.reports.get("capabilities"))
    return StageOutput(reasons=decisions, report=report)
