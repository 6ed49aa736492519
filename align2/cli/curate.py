"""`align2 curate`: validate, dedup, score and select a pool (LLaVA files or a `datasets`
dataset); write the kept rows, every row's scores and decision, the ledger and (with ground
truth) the quality report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from align2.cli import sources
from align2.cli.engine import EngineName
from align2.embedded import DEMO_MODELS


def curate_command(
    out: Annotated[Path, typer.Option(help="Output folder.")],
    llava_json: sources.LlavaJson = None,
    image_folder: sources.ImageFolder = None,
    dataset: sources.Dataset = None,
    split: sources.Split = "train",
    revision: sources.Revision = None,
    streaming: sources.Streaming = False,
    unique_ids: sources.UniqueIds = sources.IdRule.derive,
    question_model: Annotated[
        str, typer.Option(help="Question reward model: folder or Hub id; 'demo' trains tiny-vlm.")
    ] = DEMO_MODELS,
    answer_model: Annotated[str, typer.Option(help="Answer reward model, as above.")] = DEMO_MODELS,
    policy: Annotated[
        str, typer.Option(help="align2 | budget | threshold | top-k | random")
    ] = "align2",
    question_ratio: Annotated[float | None, typer.Option(help="align2: stage-1 share.")] = None,
    answer_ratio: Annotated[float | None, typer.Option(help="align2: stage-2 share.")] = None,
    budget: Annotated[int | None, typer.Option(help="budget/random: rows to keep.")] = None,
    ratio: Annotated[float | None, typer.Option(help="budget/random: share to keep.")] = None,
    question_share: Annotated[
        float | None,
        typer.Option(help="budget: candidates pass this question cut per type."),
    ] = None,
    candidate_share: Annotated[
        float | None,
        typer.Option(help="budget: ...and are this best share of the pool by answer."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="budget: a capability score must exceed it.")
    ] = None,
    capability_scores: Annotated[
        Path | None,
        typer.Option(help="budget: mmSSR's capability score files (<capability>.jsonl)."),
    ] = None,
    capability_model: Annotated[
        str | None, typer.Option(help="budget: ask this causal LM mmSSR's capability question.")
    ] = None,
    min_score: Annotated[float | None, typer.Option(help="threshold: minimum score.")] = None,
    k: Annotated[int | None, typer.Option(help="top-k: rows to keep.")] = None,
    seed: Annotated[int | None, typer.Option(help="random: seed.")] = None,
    dedup: Annotated[bool, typer.Option(help="Drop exact and near duplicates first.")] = True,
    truth: Annotated[
        Path | None, typer.Option(help="Ground truth (truth.jsonl) for the quality report.")
    ] = None,
    style_model: Annotated[
        str | None,
        typer.Option(
            help="Label styles with this causal LM (Hub id, folder or .gguf) instead of the rules."
        ),
    ] = None,
    engine: EngineName = "local",
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 64,
    trust_remote_code: Annotated[bool, typer.Option(help="Run model code from the Hub.")] = False,
) -> None:
    """Keep the best rows of a pool; every row is accounted for in the ledger."""
    from align2.builders.pipeline import curate_recipe
    from align2.builders.recipe import Recipe, checked
    from align2.builders.stages import runs_table

    source = sources.source_from_options(
        llava_json, image_folder, dataset, split, revision, streaming
    )
    options = dict(
        question_ratio=question_ratio,
        answer_ratio=answer_ratio,
        budget=budget,
        ratio=ratio,
        question_share=question_share,
        candidate_share=candidate_share,
        threshold=threshold,
        min_score=min_score,
        k=k,
        seed=seed,
    )
    # The options as a recipe: the command line and `align2 build` refuse the same values,
    # take the same defaults and run the same function.
    recipe = checked(
        Recipe,
        {
            "name": "curate",
            "source": source,
            "validation": {"unique_ids": unique_ids.value},
            "dedup": {} if dedup else None,
            "reward": {
                "question_model": question_model,
                "answer_model": answer_model,
                "batch_size": batch_size,
            },
            "styler": None if style_model is None else {"model": style_model},
            "capabilities": _capabilities(capability_scores, capability_model),
            "selection": {"policy": policy, **options},
        },
    )
    # Checked first, so a bad option never waits for the demo models to be trained.
    from align2.demo.reward_models import with_demo_models

    recipe = with_demo_models(recipe)
    pool = recipe.source.sources()
    result = curate_recipe(
        recipe, pool, out, truth=truth, engine=engine, trust_remote_code=trust_remote_code
    )
    typer.echo(result.ledger.table())
    typer.echo(runs_table(result.curation.runs))
    if result.quality is not None:
        typer.echo(json.dumps(result.quality["defect_rate"]["any"]))
    shortfall = result.curation.selection.get("shortfall")
    if shortfall:
        typer.echo(f"the budget was not met: {shortfall} rows short (selection.json)")
    typer.echo(f"outputs: {out}")


def _capabilities(scores: Path | None, model: str | None) -> dict | None:
    if scores is None and model is None:
        return None
    return {"scores": scores, "model": model}
