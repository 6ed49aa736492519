"""The card of an annotation release (`align2 annotate push`): what was scored, by how many
annotators, how they agreed and what they were told. Rendered like the dataset card (every
value from data escaped) and validated before anything is written."""

from __future__ import annotations

from dataclasses import dataclass

from huggingface_hub import DatasetCardData
from markupsafe import Markup, escape

from align2 import __version__
from align2.cards.dataset_card import ENVIRONMENT, safe, size_category, validate_card

TEMPLATE = "annotations_card.md.j2"


@dataclass
class AnnotationCardInputs:
    repo_id: str
    version: str
    content_hash: str
    name: str
    report: dict  # annotate.export's agreement report
    criteria: str  # criteria.md as the annotators saw it
    data_file: str  # the rows' path in the repo
    rows: int
    license: str = "other"


def _criteria(text: str) -> Markup:
    """The criteria file's lines, escaped, its own title left out (the card has one)."""
    lines = [line for line in text.strip().splitlines() if not line.startswith("# ")]
    return Markup("\n".join(str(escape(line)) for line in lines).strip())


def render_annotations_card(inputs: AnnotationCardInputs) -> str:
    report = inputs.report
    data = DatasetCardData(
        license=inputs.license,
        language=["en"],
        task_categories=["visual-question-answering", "image-text-to-text"],
        size_categories=[size_category(inputs.rows)],
        annotations_creators=["expert-generated"],
        pretty_name=str(safe(inputs.name, 100)),
        tags=["align2", "human-preference", "reward-modeling", "multimodal"],
        configs=[
            {"config_name": "default", "data_files": [{"split": "train", "path": inputs.data_file}]}
        ],
    )
    text = ENVIRONMENT.get_template(TEMPLATE).render(
        card_data=Markup(data.to_yaml()),
        title=safe(inputs.name, 100),
        align2_version=__version__,
        version=inputs.version,
        tag=f"v{inputs.version}",
        content_hash=inputs.content_hash,
        repo_id=safe(inputs.repo_id, 200, code=True),
        items=report["items"],
        exported=report["exported"],
        annotators=[safe(name, 64) for name in report["annotators"]],
        flagged=len(report["flagged"]),
        resolution=safe(report["resolution"], 40),
        alpha=report["krippendorff_alpha"],
        units_scored_twice=report["units_scored_twice"],
        pair_order=report["pair_order_agreement"],
        pairs_compared=report["pairs_compared"],
        criteria=_criteria(inputs.criteria),
    )
    validate_card(text)
    return text
