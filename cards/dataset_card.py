"""The dataset card: a Jinja template (templates/dataset_card.md.j2) rendered into a
`huggingface_hub.DatasetCard`, validated before anything is written.

Every value the template prints goes through `safe` (the environment's `finalize`): one
line, bounded, HTML- and table-escaped, so nothing from data or a recipe can break the YAML
header, the page's HTML or a table. Only what this module builds itself (the YAML header,
values already made safe) is marked as markup and passes as it is."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from huggingface_hub import DatasetCard, DatasetCardData
from markupsafe import Markup, escape

from align2 import __version__

TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md.j2"
EXAMPLES = 3


@dataclass
class CardInputs:
    repo_id: str
    version: str
    content_hash: str
    recipe: dict  # the validated recipe, as plain data
    ledger: dict
    kept_types: list[str]
    kept_examples: list[dict]  # id, conversations
    dropped_examples: list[dict]  # id, reason, conversations
    source: str
    question_model: str
    answer_model: str
    license: str  # a Hub license identifier (the recipe checks it)
    rows: int
    quality: dict | None = None
    selection: dict | None = None  # the curation's selection report (selection.json)
    rewrite: dict | None = None  # model, report
    downstream: dict | None = None  # align2.evaluate.compare's result, when the recipe asks
    data_files: dict[str, str] = field(default_factory=dict)  # config -> path in the repo
    provenance: list[dict] = field(default_factory=list)  # per source: file + sha256, id + commit
    repeated_ids: int = 0  # valid rows whose source id an earlier row had (derived keys)
    truncated_rows: int = 0  # scored rows with text cut to a reward model's context
    license_name: str | None = None  # with license "other"
    changelog: dict | None = None  # {"against": version, "added": [ids], "removed": [ids]}
    command: str = ""
    extra_tags: list[str] = field(default_factory=list)


DEFAULT_LIMIT = 300  # characters of a value the template prints without a limit of its own


def safe(text, limit: int = 200, *, code: bool = False) -> Markup:
    """Data text for a Markdown line: one line, bounded, HTML-escaped, table-safe. `code`:
    for a code block, where a backtick would end the block (and no table is read)."""
    if isinstance(text, Markup):
        return text
    one_line = " ".join(str(text).split())
    if len(one_line) > limit:
        one_line = one_line[: limit - 1] + "…"
    if code:
        return Markup(str(escape(one_line.replace("`", "'"))))
    return Markup(str(escape(one_line)).replace("|", "&#124;").replace("`", "&#96;"))


def _finalize(value):
    """What the template prints: numbers as they are, everything else made `safe`."""
    if value is None or isinstance(value, (bool, int, float, Markup)):
        return value
    return safe(value, DEFAULT_LIMIT)


ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE.parent),
    finalize=_finalize,
    keep_trailing_newline=True,
)


def size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")]
    bounds += [(1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]
    return next((label for bound, label in bounds if n < bound), "n>10M")


def _example(row: dict) -> dict:
    turns = row["conversations"][:2]
    text = " / ".join(f"{t['from']}: {t['value']}" for t in turns)
    return {"id": safe(row["id"], 80), "text": safe(text), "reason": safe(row.get("reason") or "")}


def _changelog(changelog: dict | None) -> dict | None:
    if changelog is None:
        return None
    ids = {k: [safe(i, 80) for i in changelog[k]] for k in ("added", "removed")}
    return {"against": safe(changelog["against"], 40), **ids}


def _flat(value, prefix: str = "") -> list[str]:
    """A recipe section as `key=value` items, nested sections as dotted keys."""
    if isinstance(value, dict):
        return [
            item
            for key, inner in value.items()
            if inner is not None
            for item in _flat(inner, f"{prefix}{key}.")
        ]
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value) or "none"
    return [f"{prefix.rstrip('.')}={value}"]


def _provenance(entry: dict) -> Markup:
    """One source as a Markdown line: what it is and the digest or commit that pins it."""
    pinned = [f"{key} `{safe(entry[key], 80)}`" for key in ("sha256", "revision") if entry.get(key)]
    what = entry.get("file") or entry.get("dataset") or entry.get("source", "")
    return Markup(f"`{safe(what, 160)}`" + (f" ({', '.join(pinned)})" if pinned else ""))


def _recipe_rows(recipe: dict) -> list[tuple[str, str]]:
    rows = []
    for stage in ("source", "validation", "dedup", "reward", "selection", "rewrite", "output"):
        value = recipe.get(stage)
        flat = "off" if value is None else "; ".join(_flat(value))
        rows.append((stage, safe(flat, 500)))
    return rows


def render_dataset_card(inputs: CardInputs) -> str:
    """The card's text; raises ValueError when it does not parse back as a valid card."""
    data = DatasetCardData(
        license=inputs.license,
        **({"license_name": inputs.license_name} if inputs.license_name else {}),
        language=["en"],
        task_categories=["visual-question-answering", "image-text-to-text"],
        size_categories=[size_category(inputs.rows)],
        source_datasets=[str(safe(inputs.source, 200))],  # the header is data too
        pretty_name=str(safe(inputs.recipe.get("pretty_name") or inputs.recipe["name"], 100)),
        tags=["align2", "instruction-tuning", "multimodal", "data-curation", *inputs.extra_tags],
        configs=[
            {
                "config_name": "default" if folder == "data" else folder,
                "data_files": [{"split": "train", "path": path}],
            }
            for folder, path in inputs.data_files.items()
        ],
    )
    ledger = inputs.ledger
    ledger_rows = [("input rows", ledger["total"]), ("kept", ledger["kept"])]
    ledger_rows += [(f"dropped: {r}", n) for r, n in ledger["dropped"].items()]
    ledger_rows += [(f"quarantined: {r}", n) for r, n in ledger["quarantined"].items()]
    text = ENVIRONMENT.get_template(
        TEMPLATE.name
    ).render(
        card_data=Markup(data.to_yaml()),  # huggingface_hub's own YAML: values quoted
        title=safe(inputs.recipe.get("pretty_name") or inputs.recipe["name"], 100),
        description=safe(inputs.recipe.get("description") or "", 2000),
        align2_version=__version__,
        version=inputs.version,
        tag=f"v{inputs.version}",
        content_hash=inputs.content_hash,
        repo_id=safe(inputs.repo_id, 200, code=True),
        recipe_rows=_recipe_rows(inputs.recipe),
        source=safe(inputs.source, 200),
        provenance=[_provenance(p) for p in inputs.provenance],
        repeated_ids=inputs.repeated_ids,
        truncated_rows=inputs.truncated_rows,
        question_model=safe(inputs.question_model, 200),
        answer_model=safe(inputs.answer_model, 200),
        ledger_rows=ledger_rows,
        kept_per_type=sorted(Counter(inputs.kept_types).items()),
        quality=inputs.quality,
        selection=inputs.selection,
        rewrite=inputs.rewrite,
        downstream=inputs.downstream,
        kept_examples=[_example(r) for r in inputs.kept_examples[:EXAMPLES]],
        dropped_examples=[_example(r) for r in inputs.dropped_examples[:EXAMPLES]],
        changelog=_changelog(inputs.changelog),
        command=safe(inputs.command, 2000, code=True),
    )
    validate_card(text)
    return text


def validate_card(text: str) -> None:
    """Offline checks of what the Hub validates: the YAML header parses as dataset card data
    with the fields the Hub reads, and every config points at data files."""
    card = DatasetCard(text, ignore_metadata_errors=False)
    data = card.data.to_dict()
    for required in ("license", "configs", "pretty_name", "task_categories", "size_categories"):
        if not data.get(required):
            raise ValueError(f"dataset card metadata is missing `{required}`")
    for config in data["configs"]:
        if not config.get("config_name") or not config.get("data_files"):
            raise ValueError(f"dataset card config {config!r} needs config_name and data_files")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Fixed metadata: the same figures give the same PNG bytes.
    figure.savefig(path, dpi=80, metadata={"Software": None})
    _pyplot().close(figure)
    return path


def plot_tradeoff(tradeoff: dict, path: Path) -> Path:
    """Kept defect rate against the budget, one line per policy, `random` flat."""
    figure, ax = _pyplot().subplots(figsize=(5.5, 3.2))
    budgets = [b * 100 for b in tradeoff["budgets"]]
    for name, curve in tradeoff["policies"].items():
        ax.plot(budgets, [p["defect_rate"] for p in curve], marker="o", label=name)
    random_rate = tradeoff["random_defect_rate"]
    ax.axhline(random_rate, color="#888888", linestyle="--", label="random")
    ax.set_xlabel("budget (% of scored rows)")
    ax.set_ylabel("defect rate of kept rows")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    return _save(figure, path)


def plot_scores(scored_rows: dict, path: Path) -> Path:
    """Histograms of question and answer scores, kept rows against all, the cut marked."""
    figure, axes = _pyplot().subplots(1, 2, figsize=(9, 3.2))
    for ax, column in zip(axes, ("question_score", "answer_score"), strict=True):
        values = [v for v in scored_rows[column] if v is not None and not math.isnan(v)]
        kept = [
            v
            for v, d in zip(scored_rows[column], scored_rows["decision"], strict=True)
            if d == "kept" and v is not None
        ]
        bins = 30
        ax.hist(values, bins=bins, color="#c8c8c8", label="all scored")
        ax.hist(kept, bins=bins, range=(min(values), max(values)), color="#2a7ab0", label="kept")
        if kept:
            ax.axvline(min(kept), color="#b0302a", linestyle="--", label="lowest kept")
        ax.set_title(column.replace("_", " "))
        ax.legend(fontsize=7)
    return _save(figure, path)
