"""Enrich the model card TRL writes with align2's provenance and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).parent / "templates"
SECTION_MARKER = "\n## align2 reward model\n"


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, keep_trailing_newline=True
    )


def write_reward_model_card(model_dir: Path, evaluation: dict | None = None) -> Path:
    """Append (or replace) the align2 section of `model_dir/README.md`."""
    model_dir = Path(model_dir)
    metadata = json.loads((model_dir / "align2_reward.json").read_text())
    section = (
        _env()
        .get_template("reward_model_section.md.j2")
        .render(
            kind=metadata["kind"],
            training=metadata["training"],
            annotations=metadata.get("annotations", "?"),
            train_pairs=metadata.get("train_pairs", 0),
            evaluation=evaluation,
        )
    )
    readme = model_dir / "README.md"
    card = readme.read_text(encoding="utf-8") if readme.exists() else ""
    card = card.split(SECTION_MARKER)[0].rstrip("\n") + "\n"
    readme.write_text(card + section, encoding="utf-8")
    return readme
