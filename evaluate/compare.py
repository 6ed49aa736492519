"""Does a curated subset train a better model? Align²LLaVA's claim, measured.

The same base VLM is instruction-tuned, for the same number of steps, on each curated set,
on random subsets of the pool of the same size (one per seed) and on the whole pool, then
evaluated on easy-VQA's test split (`evaluate.easyvqa`): answer accuracy and the share of
defective greedy answers. `value` is the first curated set's accuracy minus the random
subsets' mean (points); `defect_ratio` its defect share over theirs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from align2.evaluate.sft import SFTSettings


@dataclass(frozen=True)
class ComparisonSettings:
    """What a recipe's `evaluate` section (builders.recipe.Evaluate, where the defaults
    live) asks for, as the runs read it."""

    sft: SFTSettings
    random_seeds: tuple[int, ...]
    test_questions: int | None  # None: all 9,673
    generated_questions: int  # greedy answers read for defects
    max_new_tokens: int = 32


TINY_LLAVA = "tiny-llava"  # the embedded base: evaluate.tiny_llava


def settings_from(evaluate) -> ComparisonSettings:
    """The comparison a recipe's `evaluate` section (builders.recipe.Evaluate) asks for."""
    return ComparisonSettings(
        sft=SFTSettings(max_steps=evaluate.steps),
        random_seeds=tuple(range(evaluate.random_seeds)),
        test_questions=evaluate.test_questions,
        generated_questions=evaluate.generated,
    )


def base_model(name: str) -> str | Path:
    from align2.evaluate.tiny_llava import embedded_base

    return embedded_base() if name == TINY_LLAVA else name


def random_subset(pool, size: int, seed: int):
    """`size` rows of `pool` drawn without replacement, in pool order."""
    picked = sorted(random.Random(seed).sample(range(len(pool)), size))
    return pool.select(picked)


def _messages(rows):
    import datasets

    from align2.evaluate.sft import messages_dataset

    # The images pass as stored bytes: decoding them only to encode them again costs time.
    images = rows.cast_column("image", datasets.Image(decode=False))["image"]
    return messages_dataset(rows["id"], rows["conversations"], images)


def train_and_evaluate(rows, base: str | Path, settings: ComparisonSettings, out: Path) -> dict:
    """Instruction-tune `base` on canonical `rows`, then evaluate it on easy-VQA's test."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from align2.evaluate import easyvqa
    from align2.evaluate.sft import train_sft

    training = train_sft(_messages(rows), base, settings.sft, out)
    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    questions = easyvqa.test_questions()
    scored = easyvqa.sample(questions, settings.test_questions, seed=0)
    generated = easyvqa.sample(questions, settings.generated_questions, seed=1)
    return {
        "rows": len(rows),
        **training,
        **easyvqa.accuracy(model, processor, scored),
        **easyvqa.defect_report(model, processor, generated, settings.max_new_tokens),
    }


def compare(
    pool, curated: dict, base: str | Path, settings: ComparisonSettings, work: Path, log=print
) -> dict:
    """Train and evaluate on each of `curated` (name -> canonical rows), on random subsets
    of `pool` the size of the first curated set, and on the whole `pool`."""
    work = Path(work)
    size = len(next(iter(curated.values())))
    runs = {name: rows for name, rows in curated.items()}
    runs |= {f"random_seed{s}": random_subset(pool, size, s) for s in settings.random_seeds}
    runs["full"] = pool
    results = {}
    for name, rows in runs.items():
        log(f"downstream: training on {name} ({len(rows)} rows)")
        results[name] = train_and_evaluate(rows, base, settings, work / name)
    summary = summarize(results, first=next(iter(curated)), seeds=settings.random_seeds)
    return {**summary, "steps": settings.sft.max_steps, "batch_size": settings.sft.batch_size}


def summarize(results: dict, first: str, seeds) -> dict:
    randoms = [results[f"random_seed{s}"] for s in seeds]
    random_accuracy = float(np.mean([r["accuracy"] for r in randoms]))
    random_defects = float(np.mean([r["defect_share"] for r in randoms]))
    curated = results[first]
    return {
        "value": round(100 * (curated["accuracy"] - random_accuracy), 2),
        "defect_ratio": (
            round(curated["defect_share"] / random_defects, 4) if random_defects else None
        ),
        "curated": first,
        "random_accuracy_mean": round(random_accuracy, 4),
        "random_defect_share_mean": round(random_defects, 4),
        "train_seconds_total": round(sum(r["train_seconds"] for r in results.values()), 1),
        "runs": results,
    }


def load_curation(curation: Path):
    """(the validated pool, the kept rows) of an `align2 curate --out` folder."""
    import datasets
    import pyarrow.parquet as pq

    from align2.data.output import CANONICAL_FILE, KEPT_DECISION, SCORED_FILE
    from align2.errors import Align2Error

    curation = Path(curation)
    for name in (CANONICAL_FILE, SCORED_FILE):
        if not (curation / name).is_file():
            raise Align2Error(f"{curation} is not an `align2 curate` output folder: no {name}")
    pool = datasets.Dataset.from_file(str(curation / CANONICAL_FILE))
    scored = pq.read_table(curation / SCORED_FILE, columns=["id", "decision"]).to_pydict()
    kept = {i for i, d in zip(scored["id"], scored["decision"], strict=True) if d == KEPT_DECISION}
    if not kept:
        raise Align2Error(f"{curation} kept no rows: there is nothing to train on")
    return pool, pool.filter(lambda i: i in kept, input_columns="id")
