"""`align2 rewrite`: the inner LLM rewrites kept rows; guards and its own review decide."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from align2.cli.engine import EngineName


def rewrite_command(
    input: Annotated[
        str, typer.Option(help="Curation output folder, .parquet, save_to_disk folder or Hub id.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    model: Annotated[
        str, typer.Option(help="Inner LLM: Hub id, folder, .gguf, or smollm2 (embedded).")
    ] = "smollm2",
    max_new_tokens: Annotated[int, typer.Option(help="Longest rewrite, in tokens.")] = 96,
    batch_size: Annotated[int, typer.Option(help="Prompts per generate call.")] = 8,
    sample: Annotated[bool, typer.Option(help="Sample (seeded) instead of greedy.")] = False,
    seed: Annotated[int, typer.Option(help="Sampling and review-order seed.")] = 0,
    questions: Annotated[bool, typer.Option(help="Rewrite questions too.")] = True,
    review: Annotated[bool, typer.Option(help="Let the LLM choose original or rewrite.")] = True,
    trust_remote_code: Annotated[bool, typer.Option(help="Run model code from the Hub.")] = False,
    answer_model: Annotated[
        str | None,
        typer.Option(
            help="Answer reward model (folder or Hub id) that refuses rewrites it scores much "
            "lower than the original; default: the one a curation folder was scored with."
        ),
    ] = None,
    max_reward_drop: Annotated[
        float | None,
        typer.Option(help="Largest answer-reward fall (original - rewrite) accepted [0.5]."),
    ] = None,
    engine: EngineName = "local",
) -> None:
    """Rewrite each kept question and answer in the inner LLM's words."""
    from align2.models.generation import GenerationConfig
    from align2.rewrite.guards import GuardConfig
    from align2.rewrite.pipeline import run_rewrite
    from align2.rewrite.rewriter import RewriteConfig

    config = RewriteConfig(
        model=model,
        generation=GenerationConfig(
            max_new_tokens=max_new_tokens, batch_size=batch_size, do_sample=sample, seed=seed
        ),
        guards=GuardConfig()
        if max_reward_drop is None
        else GuardConfig(max_reward_drop=max_reward_drop),
        rewrite_questions=questions,
        review=review,
        seed=seed,
        trust_remote_code=trust_remote_code,
        answer_model=answer_model,
    )
    report = run_rewrite(input, config, out, engine)
    typer.echo(json.dumps(report, indent=2))
    typer.echo(f"outputs: {out}")
