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
    Curation,
    CurationConfig,
    curate,
    selection_columns,
)
from align2.builders.dedup import DedupConfig
from align2.builders.llm_styler import LLMStylerConfig
from align2.builders.quality import quality_report, read_truth, tradeoff_report
from align2.builders.recipe import Recipe
from align2.builders.score import ScoringConfig
from align2.builders.select import BudgetSelection, Selection, make_policy
from align2.data.output import (
    CANONICAL_FILE,
    CURATED_FILE,
    KEPT_DECISION,
    LEDGER_FILE,
    MODELS_FILE,
    QUALITY_FILE,
    SCORED_FILE,
    SELECTION_FILE,
    write_json,
    write_parquet,
)
from align2.data.sources import Source, load_canonical
from align2.data.validate import Quarantine, ValidationConfig
from align2.errors import Align2Error
from align2.models.backbones import check_model

QUARANTINE_FILE = "quarantine.jsonl"


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


def curate_recipe(
    recipe: Recipe,
    sources: Sequence[Source],
    out: Path,
    *,
    truth: Path | None = None,
    engine: str = "local",
    trust_remote_code: bool = False,
) -> CurationRun:
    """A recipe's curation, what `align2 build` and `align2 curate` both run: each stage's
    config from its recipe section. The reward models are as the recipe names them."""
    reward = recipe.reward
    trust = {"trust_remote_code": trust_remote_code}  # never a recipe field: a flag's
    selection = recipe.selection
    return run_curation(
        sources=sources,
        out=out,
        selection=make_policy(selection.policy, **selection.model_dump(exclude={"policy"})),
        question_model=reward.question_model,
        answer_model=reward.answer_model,
        question_revision=reward.question_revision,
        answer_revision=reward.answer_revision,
        dedup=None if recipe.dedup is None else DedupConfig(**recipe.dedup.model_dump()),
        truth=truth,
        engine=engine,
        batch_size=reward.batch_size,
        styler=None
        if recipe.styler is None
        else LLMStylerConfig(**recipe.styler.model_dump(), **trust),
        validation=ValidationConfig(**recipe.validation.model_dump()),
        capabilities=None
        if recipe.capabilities is None
        else CapabilityConfig(**recipe.capabilities.model_dump(), **trust),
        trust_remote_code=trust_remote_code,
    )


def run_curation(
    *,
    sources: Sequence[Source],
    out: Path,
    selection: Selection,
    question_model: str,
    answer_model: str,
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
    num_proc = num_proc or os.cpu_count() or 1
    if capabilities is not None and not isinstance(selection, BudgetSelection):
        raise Align2Error("capability scores are read by the `budget` policy only")
    for what, model in (("question model", question_model), ("answer model", answer_model)):
        check_model(model, what)
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


def write_curation(
    curation: Curation, out: Path, models: dict, quality: dict | None = None
) -> dict:
    """The kept rows (images embedded), every row's scores and decision (no image bytes),
    the ledger, the reward models used and, when ground truth exists, the quality report.
    Returns the paths."""
    out = Path(out)
    paths = {
        "curated": write_parquet(curation.kept, out / CURATED_FILE),
        "scored": write_parquet(
            curation.scored.remove_columns("image"), out / SCORED_FILE, embed_images=False
        ),
        "ledger": write_json(curation.ledger.to_dict(), out / LEDGER_FILE),
        "models": write_json(models, out / MODELS_FILE),
        "selection": write_json(curation.selection, out / SELECTION_FILE),
    }
    if quality is not None:
        paths["quality"] = write_json(quality, out / QUALITY_FILE)
    return {name: str(path) for name, path in paths.items()}
