"""`align2 evaluate`: does a curation train a better model than random subsets of its pool?"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer


def evaluate_command(
    curation: Annotated[Path, typer.Argument(help="An `align2 curate --out` folder.")],
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Base VLM to instruction-tune: a folder or Hub id of an image-text-to-text "
            "model with a chat template (default: the embedded tiny LLaVA)."
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps per run (default 400).")] = None,
    random_seeds: Annotated[
        int | None, typer.Option(help="Random subsets to compare with (default 3).")
    ] = None,
    test_questions: Annotated[
        int | None, typer.Option(help="easy-VQA test questions scored (default: all 9,673).")
    ] = None,
    generated: Annotated[
        int | None, typer.Option(help="Greedy answers read for defects (default 300).")
    ] = None,
) -> None:
    """Instruction-tune one base VLM on the kept rows, on random subsets of the pool of the
    same size and on the whole pool, for the same steps; evaluate each on easy-VQA's test
    split (answer accuracy, share of defective answers)."""
    from align2.builders.recipe import Evaluate, checked
    from align2.evaluate.compare import base_model, compare, load_curation, settings_from

    given = {
        "model": model,
        "steps": steps,
        "random_seeds": random_seeds,
        "test_questions": test_questions,
        "generated": generated,
    }
    evaluate = checked(Evaluate, {k: v for k, v in given.items() if v is not None})
    pool, kept = load_curation(curation)
    base = base_model(evaluate.model)
    with tempfile.TemporaryDirectory(prefix="align2-evaluate-") as work:
        result = compare(
            pool, {"curated": kept}, base, settings_from(evaluate), Path(work), log=typer.echo
        )
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    typer.echo(table(result))
    typer.echo(f"report: {report}")


def table(result: dict) -> str:
    lines = ["run            rows  accuracy  defective"]
    for name, run in result["runs"].items():
        accuracy, defects = run["accuracy"], run["defect_share"]
        lines.append(f"{name:<14} {run['rows']:>5}  {accuracy:>8.4f}  {defects:>9.4f}")
    ratio = result["defect_ratio"]
    lines.append(f"curated - random mean: {result['value']:+.2f} points; defect ratio {ratio}")
    return "\n".join(lines)
