"""One curation run end to end: source -> validate -> curate (dedup, score, select) ->
quality report -> outputs. The CLI and recipes call this; stages stay apart from it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from align2.builders.capabilities import CapabilityConfig
from align2.builders.curate import (
    KEPT_DECISION,
    Curation,
    CurationConfig,
    curate,
    selection_columns,
)
from align2.builders.dedup import DedupConfig
from align2.builders.llm_styler import LLMStylerConfig
from align2.builders.output import write_curation
from align2.builders.quality import quality_report, read_truth, tradeoff_report
from align2.builders.score import ScoringConfig
from align2.builders.select import BudgetSelection, Selection
from align2.builders.sources import Source, load_canonical
from align2.builders.validate import Quarantine, ValidationConfig
from align2.errors import Align2Error
from align2.reward.backbones import check_model

QUARANTINE_FILE = "quarantine.jsonl"
CANONICAL_FILE = "work/canonical.arrow"  # the validated pool, memory-mapped


@dataclass
class CurationRun:
    curation: Curation
    quality: dict | None
    paths: dict
    models: tuple[str, str]  # (question, answer) reward models used
    provenance: list[dict]  # each source: file + sha256, or dataset + commit
    quarantine: Quarantine  # validation's counts (repeated ids among them)

    @property
    def ledger(self):
        return self.curation.ledger


DEFAULT_DEDUP = DedupConfig()
DEFAULT_VALIDATION = ValidationConfig()


def run_curation(
    *,
    sources: Sequence[Source],
    out: Path,
    selection: Selection,
    question_model: str | None = None,
    answer_model: str | None = None,
    question_revision: str | None = None,
    answer_revision: str | None = None,
    dedup: DedupConfig | None = DEFAULT_DEDUP,  # None: no dedup
    truth: Path | None = None,
    engine: str = "local",
    batch_size: int = ScoringConfig.batch_size,
    trust_remote_code: bool = False,
    styler: LLMStylerConfig | None = None,  # None: the training-free rules
    validation: ValidationConfig = DEFAULT_VALIDATION,
    num_proc: int | None = None,  # processes for validation and dedup; None: every core
    capabilities: CapabilityConfig | None = None,  # None: no capability scores
) -> CurationRun:
    """Models default to the embedded demo reward models (trained once, cached)."""
    num_proc = num_proc or os.cpu_count() or 1
    if capabilities is not None and not isinstance(selection, BudgetSelection):
        raise Align2Error("capability scores are read by the `budget` policy only")
    for what, model in (("question model", question_model), ("answer model", answer_model)):
        if model is not None:
            check_model(model, what)
    if question_model is None or answer_model is None:
        from align2.reward.demo_models import demo_reward_models

        demo_question, demo_answer = demo_reward_models()
        question_model = question_model or str(demo_question)
        answer_model = answer_model or str(demo_answer)
    out = Path(out)
    provenance = [source.provenance() for source in sources]  # what is about to be read
    quarantine = Quarantine(path=out / QUARANTINE_FILE)
    try:
        dataset = load_canonical(
            sources, validation, quarantine, path=out / CANONICAL_FILE, num_proc=num_proc
        )
    finally:
        quarantine.close()
    if quarantine.ledger.total == 0:
        raise Align2Error("the source holds no rows: " + ", ".join(s.name for s in sources))
    if len(dataset) == 0:
        raise Align2Error(
            f"no valid rows to curate: all {quarantine.ledger.total} input rows were "
            f"quarantined; the reasons are in {quarantine.path}"
        )
    config = CurationConfig(
        scoring=ScoringConfig(
            question_model=question_model,
            answer_model=answer_model,
            question_revision=question_revision,
            answer_revision=answer_revision,
            batch_size=batch_size,
            trust_remote_code=trust_remote_code,
        ),
        selection=selection,
        dedup=dedup,
        styler=styler,
        capabilities=capabilities,
    )
    curation = curate(
        dataset, config, out / "work", quarantine.ledger, engine=engine, num_proc=num_proc
    )
    quality = None
    if truth is not None:
        scored = curation.scored.filter(lambda s: s is not None, input_columns="answer_score")
        kept = np.asarray(scored["decision"][:]) == KEPT_DECISION
        facts = read_truth(truth)
        quality = quality_report(scored["id"], kept, facts)
        quality["tradeoff"] = tradeoff_report(scored["id"], selection_columns(scored), facts)
    models = {
        "question_model": question_model,
        "question_revision": question_revision,
        "answer_model": answer_model,
        "answer_revision": answer_revision,
    }
    paths = write_curation(curation, out, models, quality)
    return CurationRun(
        curation, quality, paths, (question_model, answer_model), provenance, quarantine
    )
