"""The seed authors' annotation files in their released shape (DCDmllm/Align2LLaVA,
reward_model/datasets/preference/{question,answer}/{train,test}.json) train and evaluate
through the real `align2 reward` command."""

import json
import random

import pytest
from helpers import run_align2 as run
from helpers import write_png

WORDS = "the dog park food bus street red white people could might because scene".split()


def _sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize()


def _question_record(rng, image_id):
    """4-7 candidates, each a list of 1-7 questions; `<image>` once, at the start or the end
    of candidate 0's first question; one score per candidate in steps of 0.1."""
    candidates = [
        [_sentence(rng, 8) + "?" for _ in range(rng.randint(1, 7))]
        for _ in range(rng.randint(4, 7))
    ]
    first = candidates[0][0]
    candidates[0][0] = f"<image>\n{first}" if rng.random() < 0.5 else f"{first}\n<image>"
    scores = [round(rng.randint(1, 10) / 10, 1) for _ in candidates]
    return {"id": image_id, "image": f"{image_id}.jpg", "questions": candidates, "score": scores}


def _answer_record(rng, image_id, turns=1):
    """LLaVA turns whose gpt `value` is 7 candidate answers (the released ones run 100-300
    words) with their `score` inside the turn."""
    conversations = []
    for turn in range(turns):
        question = _sentence(rng, 10) + "?"
        conversations.append(
            {"from": "human", "value": f"<image>\n{question}" if turn == 0 else question}
        )
        answers = [_sentence(rng, rng.randint(120, 300)) + "." for _ in range(7)]
        scores = [round(rng.randint(1, 10) / 10, 1) for _ in answers]
        conversations.append({"from": "gpt", "value": answers, "score": scores})
    return {"id": image_id, "image": f"{image_id}.jpg", "conversations": conversations}


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed")
    rng = random.Random(0)
    ids = [f"{rng.randrange(10**12):012d}" for _ in range(24)]
    for n, image_id in enumerate(ids):
        write_png(root / "coco" / f"{image_id}.jpg", size=(64, 48), color=(n * 10, 40, 200 - n * 5))
    files = {}
    # The two kinds are not in the same order and do not hold the same ids.
    question_ids, answer_ids = ids[:18], list(reversed(ids[6:]))
    for kind, chosen, make in (
        ("question", question_ids, _question_record),
        ("answer", answer_ids, _answer_record),
    ):
        records = [make(rng, i) for i in chosen]
        if kind == "answer":
            records[0] = _answer_record(rng, chosen[0], turns=2)
        for split, part in (("train", records[:12]), ("test", records[12:])):
            path = root / kind / f"{split}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(part, indent=2), encoding="utf-8")
            files[kind, split] = path
    return root, files


@pytest.mark.parametrize("kind", ["question", "answer"])
def test_the_released_files_train_and_evaluate(seed_files, tmp_path, kind):
    root, files = seed_files
    model = tmp_path / kind
    common = ["--image-folder", root / "coco", "--backbone", "tiny-text", "--max-steps", "3"]
    result = run(
        "reward",
        "train",
        "--kind",
        kind,
        "--annotations",
        files[kind, "train"],
        "--eval-annotations",
        files[kind, "test"],
        "--out",
        model,
        "--truncate",
        *common,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((model / "align2_reward.json").read_text())
    assert metadata["train_pairs"] > 0 and metadata["pairs_over_max_length"] == 0
    if kind == "answer":  # many answers are longer than the 256 tokens of a pair
        assert metadata["pairs_truncated"] > 0
    result = run(
        "reward",
        "eval",
        "--model",
        model,
        "--annotations",
        files[kind, "test"],
        "--image-folder",
        root / "coco",
        "--out",
        tmp_path / "eval.json",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["per_kind"][kind]["pairs"] == metrics["overall"]["pairs"] > 0


def test_long_pairs_are_left_out_and_counted_without_truncate(seed_files, tmp_path):
    root, files = seed_files
    result = run(
        "reward",
        "train",
        "--kind",
        "answer",
        "--annotations",
        files["answer", "train"],
        "--image-folder",
        root / "coco",
        "--backbone",
        "tiny-text",
        "--max-steps",
        "2",
        "--max-length",
        "200",
        "--out",
        tmp_path / "rm",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((tmp_path / "rm" / "align2_reward.json").read_text())
    assert 0 < metadata["pairs_over_max_length"] < metadata["train_pairs"]
    assert "--truncate cuts them instead" in result.stderr
