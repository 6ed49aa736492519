"""The truth report reads every claim of an answer, not its first word: the demo release's
flipped rewrites are judged false against the image, faithful ones true, and answers that
name no colour or shape are counted as unjudged."""

import json

import pytest

from align2.rewrite.truth import judge, read_image_facts, rewrite_truth_report

BLUE_CIRCLE = {"blue", "circle"}


@pytest.mark.parametrize(
    "question, answer, verdict",
    [
        ("Is there not a blue shape?", "Yes.", False),  # "yes": there is not a blue shape
        ("Is there not a blue shape?", "No, there is a blue shape.", True),
        ("Is there not a blue shape?", "No, there is no blue shape.", False),  # contradicts itself
        ("Is no red shape present?", "No.", False),  # "no": a red shape is present
        ("Is no red shape present?", "Yes, no red shape is present.", True),
        ("Is there a blue shape?", "Yes. The image shows a blue circle.", True),
        ("Is there a blue shape?", "Yes. The image shows a blue triangle.", False),
        ("What color is the circle?", "The circle in the image is blue.", True),
        ("What color is the circle?", "The circle in the image is red.", False),
        ("What shape is in the image?", "The shape in the image is a circle.", True),
        (
            "Is there a red shape?",
            "No. The only shape in the image is a blue circle, so there is no red shape.",
            True,
        ),
        ("Describe the image.", "As an AI, I cannot see images.", None),
        ("Describe the image.", "<p></p>", None),
    ],
)
def test_every_claim_is_judged_against_the_image(question, answer, verdict):
    assert judge(answer, question, BLUE_CIRCLE) is verdict


def _row(question: str, original: str, rewrite: str, decision: str = "accepted") -> dict:
    human = {"from": "human", "value": f"<image>\n{question}"}
    return {
        "id": "x",
        "original_conversations": [human, {"from": "gpt", "value": original}],
        "conversations": [human, {"from": "gpt", "value": rewrite}],
        "rewrite_decisions": ["skipped", decision],
    }


def test_the_report_counts_flips_unjudged_and_wrong_originals():
    rows = [
        _row("Is there a blue shape?", "Yes.", "Yes, there is a blue shape."),  # true
        _row("Is there not a blue shape?", "No.", "No, there is no blue shape."),  # flipped
        _row("What color is it?", "Red.", "It is red."),  # the original was already false
        _row("Describe it.", "I'm sorry.", "Sorry."),  # names nothing
        _row("Is there a blue shape?", "Yes.", "No.", decision="polarity"),  # not accepted
    ]
    report = rewrite_truth_report(rows, {"x": BLUE_CIRCLE})
    assert report == {
        "accepted_answers": 4,
        "yes_no": 2,
        "true": 1,
        "false": 2,
        "unjudged": 1,
        "original_false": 1,
        "flipped": 1,
        "true_share": 0.3333,
    }


def test_image_facts_come_from_the_demo_truth_file(tmp_path):
    path = tmp_path / "truth.jsonl"
    facts = {"color": "gray", "shape": "triangle", "answers": ["yes"]}
    path.write_text(json.dumps({"id": "a", "defects": [], "facts": facts}) + "\n")
    assert read_image_facts(path) == {"a": {"gray", "triangle"}}
