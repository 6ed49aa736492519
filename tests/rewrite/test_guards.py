"""Guards, each with a hand-made example: a rewrite that loses a fact, flips yes/no or any
other claim, stutters, refuses, or blows up in length is rejected with the guard's name; a
faithful one is accepted. The flips are the ones SmolLM2 wrote in the demo release."""

import pytest

from align2.rewrite.guards import GuardConfig, check_rewrite

CONFIG = GuardConfig()


@pytest.mark.parametrize(
    "original, rewrite, guard",
    [
        ("There are 3 red apples.", "There are some red apples.", "numbers"),
        ("There are three red apples.", "You can see 3 red apples.", "accepted"),
        ("The shape is blue.", "The shape is green.", "colours"),
        ("A grey circle.", "A gray circle is shown.", "accepted"),
        ("It is a triangle.", "It is a square.", "shapes"),
        ("Two circles are drawn.", "The picture has 2 circles.", "accepted"),
        ("The man near the Eiffel Tower waves.", "A man near a tower waves.", "entities"),
        ("Yes, there is a red circle.", "No, there is a red circle.", "polarity"),
        ("No.", "Yes.", "polarity"),
        ("A red circle.", "A red circle " + "that is very round " * 10, "length"),
        ("A red circle on white.", "As an AI, I see a red circle on white.", "meta_text"),
        (
            "A red circle on white.",
            "Here is the rewritten answer: a red circle on white.",
            "meta_text",
        ),
        ("The circle is red.", "The round shape is red, a circle.", "accepted"),
        ("Blue.", "The answer is blue.", "meta_text"),
        ("It is green.", 'The answer to the question "What color?" is green.', "meta_text"),
    ],
)
def test_each_guard_on_a_hand_made_example(original, rewrite, guard):
    assert check_rewrite(original, rewrite, is_answer=True, config=CONFIG) == guard


def test_image_token_must_stay_and_reward_must_not_fall():
    assert (
        check_rewrite("<image>\nWhat is it?", "What is it?", is_answer=False, config=CONFIG)
        == "image_token"
    )
    kwargs = dict(is_answer=True, config=GuardConfig(max_reward_drop=0.5))
    assert check_rewrite("A red circle.", "A circle, red.", reward_drop=0.7, **kwargs) == (
        "reward_drop"
    )
    assert check_rewrite("A red circle.", "A circle, red.", reward_drop=0.2, **kwargs) == (
        "accepted"
    )


@pytest.mark.parametrize(
    "original, rewrite, guard",
    [
        ("Is there a red shape?", "There is a red shape.", "question_form"),
        ("Is there not a red shape?", "Is there a red shape?", "negation"),
        ("Is there a red shape?", "Does the picture show a red shape?", "accepted"),
        ("Triangle.", "The shape is a triangle.", "accepted"),  # within the length slack
    ],
)
def test_question_guards(original, rewrite, guard):
    is_answer = not original.endswith("?")
    assert check_rewrite(original, rewrite, is_answer=is_answer, config=CONFIG) == guard


# (question, original, rewrite): SmolLM2's accepted rewrites in the 2026-12-02 demo release.
FLIPS = [
    (
        "Does the image not contain a red shape?",
        "No, the image contains a red shape.",
        "No, the image does not contain a red shape.",
    ),
    ("Is there not a blue shape?", "Yes.", "Yes, there is a blue shape."),
    ("Is no red shape present?", "No.", "No, no red shape is present."),
    (
        "Is there not a green shape in the image?",
        "No. The image shows a green circle, so there is a green shape.",
        "No, the image shows a green circle, so there is no green shape.",
    ),
]


@pytest.mark.parametrize("question, original, rewrite", FLIPS)
def test_a_claim_flipped_anywhere_in_the_answer_is_refused(question, original, rewrite):
    kwargs = dict(is_answer=True, config=CONFIG, question=question)
    assert check_rewrite(original, rewrite, **kwargs) == "claims"


@pytest.mark.parametrize(
    "question, original, rewrite, guard",
    [
        ("Is no gray shape present?", "No.", "No, no.", "claims"),  # a bare denial added
        ("Is there a red shape?", "Yes.", "Yes, yes.", "degenerate"),
        ("What color is the circle?", "Blue.", "Blue blue.", "degenerate"),
        ("Is there a red shape?", "Yes.", "Yes, is there a red shape?", "degenerate"),
        ("Is there a red shape?", "Yes.", "Yes, there is a red circle.", "added_facts"),
        ("What shape is it?", "A circle.", "A circle, not a red square.", "added_facts"),
        ("Is there a blue shape?", "Blue.", "Yes, blue.", "polarity"),
    ],
)
def test_degenerate_and_invented_rewrites_are_refused(question, original, rewrite, guard):
    kwargs = dict(is_answer=True, config=CONFIG, question=question)
    assert check_rewrite(original, rewrite, **kwargs) == guard


@pytest.mark.parametrize(
    "question, original, rewrite",
    [
        ("Is there not a blue shape?", "Yes.", "Yes, there is no blue shape."),
        ("Is no red shape present?", "No.", "No, a red shape is present."),
        (
            "Is there a blue shape?",
            "No. The only shape in the image is a red circle, so there is no blue shape.",
            "No, there is no blue shape; the only shape is a red circle.",
        ),
        (
            "Is there a green shape in the image?",
            "Yes. The image shows a green circle, so there is a green shape.",
            "Yes, the image shows a green circle, which means there is a green shape.",
        ),
        ("What is the man holding?", "He is not holding an umbrella.", "He holds no umbrella."),
    ],
)
def test_a_faithful_rewrite_keeps_every_claim(question, original, rewrite):
    kwargs = dict(is_answer=True, config=CONFIG, question=question)
    assert check_rewrite(original, rewrite, **kwargs) == "accepted"
