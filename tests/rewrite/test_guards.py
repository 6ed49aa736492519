"""Guards, each with a hand-made example: a rewrite that loses a fact, flips yes/no, refuses,
or blows up in length is rejected with the guard's name; a faithful one is accepted."""

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
