"""Annotation formats -> preference pairs. Small files in the seed's exact format."""

import json
import random

import pytest
from helpers import write_png

from align2.data.validate import Quarantine
from align2.demo.annotations import (
    ANSWER_RUBRIC,
    QUESTION_RUBRIC,
    DemoAnnotationConfig,
    build_demo_annotations,
)
from align2.errors import SourceError
from align2.reward.annotations import PairingConfig, corrupt, preference_pairs

NO_AUGMENT = PairingConfig(augment_p=0.0)


@pytest.fixture
def folder(tmp_path):
    write_png(tmp_path / "images" / "000000033471.png")
    return tmp_path


SEED_QUESTIONS = [
    {
        "id": "000000033471",
        "image": "000000033471.png",
        "questions": [
            ["<image>\nWhat are the colors of the bus in the image?", "What feature can be seen?"],
            ["What color is the bus?\n<image>"],
            ["<image>\nIs there a bus?"],
        ],
        "score": [0.9, 0.6, 0.6],
    },
    {  # candidates and scores differ in length: quarantined, not fatal
        "id": "mismatch",
        "image": "000000033471.png",
        "questions": [["<image>\nA?"], ["<image>\nB?"]],
        "score": [0.5, 0.4, 0.1],
    },
]

# As released (reward_model/datasets/preference/answer/*.json): `score` inside the gpt turn.
SEED_ANSWERS = [
    {
        "id": "000000033471",
        "image": "000000033471.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat are the colors of the bus?"},
            {
                "from": "gpt",
                "value": ["White and red.", "Blue.", "The bus is", "White, red."],
                "score": [1.0, 0.1, 0.3, 0.9],
            },
        ],
    }
]


def _write(folder, name, records):
    path = folder / name
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_seed_question_file_loads_as_it_is(folder):
    quarantine = Quarantine()
    pairs = preference_pairs(
        _write(folder, "q.json", SEED_QUESTIONS),
        image_folder=folder / "images",
        config=NO_AUGMENT,
        quarantine=quarantine,
    )
    # 0.9 > 0.6 twice; the 0.6 / 0.6 tie is skipped.
    assert len(pairs) == 2
    assert set(pairs["kind"]) == {"question"} and set(pairs["prompt"]) == {""}
    assert (
        pairs[0]["chosen"]
        == "What are the colors of the bus in the image?\nWhat feature can be seen?"
    )
    assert pairs[0]["rejected"] == "What color is the bus?"
    assert pairs["margin"] == pytest.approx([0.3, 0.3])
    assert pairs[0]["image"].size == (8, 8)
    [entry] = quarantine.entries
    assert entry["id"] == "mismatch" and entry["reason"] == "candidate_score_mismatch"
    assert entry["detail"] == "2 candidates but 3 scores"


def test_seed_answer_file_pairs_every_ordered_pair(folder):
    pairs = preference_pairs(
        _write(folder, "a.json", SEED_ANSWERS), image_folder=folder / "images", config=NO_AUGMENT
    )
    assert len(pairs) == 6  # 4 distinct scores -> 4*3/2 ordered pairs with s_i > s_j
    assert set(pairs["prompt"]) == {"What are the colors of the bus?"}
    assert ("White and red.", "Blue.") in zip(pairs["chosen"], pairs["rejected"], strict=True)
    turn = SEED_ANSWERS[0]["conversations"][1]
    scores = dict(zip(turn["value"], turn["score"], strict=True))
    for chosen, rejected in zip(pairs["chosen"], pairs["rejected"], strict=True):
        assert scores[chosen] > scores[rejected]


def test_seed_answer_scores_at_the_top_level_read_the_same(folder):
    record = json.loads(json.dumps(SEED_ANSWERS[0]))
    record["score"] = record["conversations"][1].pop("score")
    top = preference_pairs(_write(folder, "t.json", [record]), image_folder=folder / "images")
    inside = preference_pairs(
        _write(folder, "a.json", SEED_ANSWERS), image_folder=folder / "images"
    )
    assert top.remove_columns("image").to_list() == inside.remove_columns("image").to_list()


def test_every_annotated_turn_of_a_record_is_an_item(folder):
    record = {
        "id": "000000033471",
        "image": "000000033471.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is it?"},
            {"from": "gpt", "value": ["A bus.", "A cat."], "score": [0.9, 0.2]},
            {"from": "human", "value": "What colour is it?"},
            {"from": "gpt", "value": "Red."},  # not annotated: no item
            {"from": "human", "value": "Is it moving?"},
            {"from": "gpt", "value": ["No.", "It", "Yes."], "score": [0.8, 0.1, 0.4]},
        ],
    }
    pairs = preference_pairs(
        _write(folder, "m.json", [record]), image_folder=folder / "images", config=NO_AUGMENT
    )
    assert list(
        zip(pairs["id"], pairs["prompt"], pairs["chosen"], pairs["rejected"], strict=True)
    ) == [
        ("000000033471-0", "What is it?", "A bus.", "A cat."),
        ("000000033471-1", "Is it moving?", "No.", "It"),
        ("000000033471-1", "Is it moving?", "No.", "Yes."),
        ("000000033471-1", "Is it moving?", "Yes.", "It"),
    ]
    record["conversations"][5].pop("score")
    with pytest.raises(SourceError, match=r"turn 5 holds candidates but no `score`"):
        preference_pairs(_write(folder, "m.json", [record]), image_folder=folder / "images")


def test_generic_and_explicit_pair_formats(folder):
    records = [
        {
            "id": "g",
            "image": "000000033471.png",
            "kind": "answer",
            "prompt": "Colour?",
            "candidates": ["Red.", "Blue."],
            "scores": [0.8, 0.2],
            "labels": ["original", "fact"],
        },
        {
            "id": "p",
            "image": "000000033471.png",
            "kind": "answer",
            "prompt": "Colour?",
            "chosen": "Red.",
            "rejected": "As an AI...",
            "margin": 1.0,
            "subset": "refusal",
        },
    ]
    pairs = preference_pairs(
        _write(folder, "g.jsonl".replace(".jsonl", ".json"), records),
        image_folder=folder / "images",
        config=NO_AUGMENT,
    )
    assert pairs["subset"] == ["fact", "refusal"]
    assert pairs["margin"] == pytest.approx([0.6, 1.0])


def test_malformed_record_is_a_clear_error(folder):
    bad = [
        SEED_ANSWERS[0],
        {"id": "broken", "image": "000000033471.png", "questions": "oops", "score": [1.0]},
    ]
    with pytest.raises(
        SourceError,
        match=r"record 1 \(id 'broken'\) is malformed: `questions` "
        "must be a list, got str",
    ):
        preference_pairs(_write(folder, "bad.json", bad), image_folder=folder / "images")


def test_missing_image_is_quarantined(folder):
    records = [dict(SEED_ANSWERS[0], image="../escape.png")]
    quarantine = Quarantine()
    pairs = preference_pairs(
        _write(folder, "a.json", records), image_folder=folder / "images", quarantine=quarantine
    )
    assert len(pairs) == 0 and quarantine.entries[0]["reason"] == "image_path_unsafe"


def test_augmentation_adds_original_over_corrupted(folder):
    pairs = preference_pairs(
        _write(folder, "q.json", SEED_QUESTIONS[:1]),
        image_folder=folder / "images",
        config=PairingConfig(augment_p=1.0),
    )
    augmented = [p for p in pairs if p["subset"].startswith("augment:")]
    assert len(augmented) == 3  # one per candidate
    candidates = [
        "\n".join(q.replace("<image>", "").strip() for q in c)
        for c in SEED_QUESTIONS[0]["questions"]
    ]
    for pair in augmented:
        assert pair["chosen"] in candidates and pair["rejected"] not in candidates
        assert pair["margin"] > 0


@pytest.mark.parametrize(
    "kind, methods",
    [("answer", {"shuffle", "crop"}), ("question", {"shuffle", "crop", "duplicate"})],
)
def test_corruptions(kind, methods):
    rng = random.Random(0)
    text = "What color is the big red bus?\nHow many wheels does it have?"
    seen = set()
    for _ in range(60):
        corrupted, how = corrupt(text, kind, rng)
        assert corrupted != text
        if how == "shuffle":
            assert sorted(corrupted.split()) == sorted(text.split())
        elif how == "crop":
            assert corrupted in " ".join(text.split())
        seen.add(how)
    assert seen == methods


def test_demo_annotations_follow_the_rubric_and_are_deterministic():
    config = DemoAnnotationConfig(split="test", size=20, seed=5)
    questions, answers = build_demo_annotations(config)
    assert (questions, answers) == build_demo_annotations(config)
    assert len(questions) == 20 and len(answers) == 60
    for record in questions:
        assert len(record["questions"]) == len(record["score"]) == 7
        assert record["questions"][0][0].startswith("<image>\n")
        assert [QUESTION_RUBRIC[label] for label in record["labels"]] == record["score"]
    for record in answers:
        assert len(record["conversations"][1]["value"]) == 7
        assert record["score"][0] == ANSWER_RUBRIC["original"] == max(record["score"])


def test_demo_fact_pairs_are_text_balanced():
    """Pairs that differ only in a fact must not be decidable from text: in the chosen answers
    of yes/no pairs, "yes" and "no" are equally common for each question form."""
    _, answers = build_demo_annotations(DemoAnnotationConfig(split="train", size=600, seed=0))
    counts = {}
    for record in answers:
        if record["labels"][2] != "fact:yesno":
            continue
        question = record["conversations"][0]["value"]
        negated = " not " in question or "is no " in question
        yes = record["conversations"][1]["value"][0].startswith("Yes")
        counts[(negated, yes)] = counts.get((negated, yes), 0) + 1
    for negated in (False, True):
        share = counts[(negated, True)] / (counts[(negated, True)] + counts[(negated, False)])
        assert 0.4 < share < 0.6
