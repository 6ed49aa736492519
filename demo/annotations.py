"""Demo annotations in the seed's released format, for easy-VQA images.

They stand in for human labels in the demo and the tests: 7 candidates per item (the clean
original plus variants, including the demo pool's defect kinds) scored by a fixed rubric of
what a careful human would give each kind. Questions are generated from easy-VQA's own
question templates, balanced so that the text alone never tells which candidate is right
(subject present or absent and negated or not, 50/50 each; colours and shapes uniform):
pairs that differ only in a fact need the image. Answer items are colour, shape and yes/no
questions and, as a quarter of them, image descriptions (a wrong description names a wrong
colour or shape), so the answer model also reads the demo pool's description turns.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from align2.data.schema import GPT, HUMAN, IMAGE_TOKEN
from align2.demo.pool import (
    COLORS,
    DESCRIBE_PROMPTS,
    MARKUP_NOISE,
    OFF_TOPIC,
    REFUSALS,
    SHAPES,
    answer_text,
    describe,
    easy_vqa_split,
    hallucinate,
    image_facts,
    other,
    shuffle_words,
    wrong_attribute,
)

# Rubric: the score a careful annotator gives each kind of candidate.
ANSWER_RUBRIC = {
    "original": 1.0,  # correct, in a full sentence (with a reason for yes/no questions)
    "short": 0.8,  # correct, one word
    "truncated": 0.3,
    "word_shuffle": 0.2,
    "fact": 0.1,  # fluent but contradicts the image (colour, shape or yes/no)
    "short_fact": 0.1,  # the same, in one word
    "off_topic": 0.05,
    "refusal": 0.05,
    "markup_noise": 0.0,
}
QUESTION_RUBRIC = {
    "original": 1.0,  # answerable from the image
    "duplicated": 0.4,  # a question asked twice
    "truncated": 0.3,
    "word_shuffle": 0.25,
    "off_topic": 0.2,  # unrelated to the image
    "presupposition": 0.1,  # asks about a shape that is not there
}
OFF_TOPIC_QUESTIONS = (
    "What is the capital of France?",
    "How do I bake sourdough bread?",
    "Who won the football world cup in 2010?",
    "What is the square root of 144?",
)
YESNO = (
    ("is there a {x}?", "is there not a {x}?"),
    ("is there a {x} in the image?", "is there not a {x} in the image?"),
    ("does the image contain a {x}?", "does the image not contain a {x}?"),
    ("is a {x} present?", "is no {x} present?"),
)
DESCRIBE = "describe"
# What an answer item asks: the pool's question kinds, and a description (its detail type).
ANSWER_KINDS = ("color", "shape", "yesno", DESCRIBE)
COLOR_QUESTIONS = (
    "what color is the shape?",
    "what color is the {shape}?",
    "what is the color of the {shape}?",
)
SHAPE_QUESTIONS = (
    "what shape is in the image?",
    "what shape does the image contain?",
    "what is the {color} shape?",
)


@dataclass(frozen=True)
class DemoAnnotationConfig:
    split: str = "train"
    size: int | None = None  # images; None = every image in the split
    questions_per_image: int = 3  # answer-model items per image (one per question)
    seed: int = 0


def ask(rng: random.Random, facts: dict, kind: str) -> tuple[str, str]:
    """A question of `kind` (color | shape | yesno) and its true one-word answer."""
    if kind == "color":
        return rng.choice(COLOR_QUESTIONS).format(**facts), facts["color"]
    if kind == "shape":
        return rng.choice(SHAPE_QUESTIONS).format(**facts), facts["shape"]
    present, negated = rng.random() < 0.5, rng.random() < 0.5
    if rng.random() < 0.5:
        subject = facts["shape"] if present else other(rng, facts["shape"], SHAPES)
    else:
        color = facts["color"] if present else other(rng, facts["color"], COLORS)
        subject = f"{color} shape"
    question = rng.choice(YESNO)[negated].format(x=subject)
    return question, "yes" if present != negated else "no"


def _correct_and_wrong(rng: random.Random, facts: dict, kind: str) -> tuple[str, dict]:
    """(question or description prompt, the correct and hallucinated answers: full, short)."""
    if kind == DESCRIBE:
        prompt = rng.choice(DESCRIBE_PROMPTS)
        detailed = "detail" in prompt
        wrong = wrong_attribute(rng, facts)
        answers = {
            "original": describe(facts, detailed),
            "short": "A {color} {shape}.".format(**facts),
            "fact": describe(wrong, detailed),
            "short_fact": "A {color} {shape}.".format(**wrong),
        }
        return prompt, answers
    question, truth = ask(rng, facts, kind)
    style = rng.choice(("sentence", "reason")) if kind == "yesno" else "sentence"
    original = answer_text(question, truth, facts, style)
    turn = {"q": question, "a": original, "qa": (question, truth), "style": style}
    answers = {
        "original": original,
        "short": answer_text(question, truth, facts, "short"),
        "fact": hallucinate(rng, turn, facts),
        "short_fact": hallucinate(rng, {**turn, "style": "short"}, facts),
    }
    return question[0].upper() + question[1:], answers


def answer_item(rng: random.Random, facts: dict, kind: str) -> tuple[str, list[str], list[str]]:
    """(question, 7 candidate answers, their labels). Pairs labelled `fact:K` (and
    `short>short_fact:K`) differ only in a fact that the image shows; `kind` is color,
    shape, yesno or describe (a description of the image)."""
    question, answers = _correct_and_wrong(rng, facts, kind)
    original = answers["original"]
    words = original.split()
    garbage_kind = rng.choice(("off_topic", "refusal", "markup_noise"))
    garbage = {"off_topic": OFF_TOPIC, "refusal": REFUSALS, "markup_noise": MARKUP_NOISE}
    candidates = {
        "original": original,
        "short": answers["short"],
        f"fact:{kind}": answers["fact"],
        f"short_fact:{kind}": answers["short_fact"],
        "truncated": " ".join(words[: rng.randint(1, max(1, len(words) - 2))]).rstrip(".,"),
        "word_shuffle": shuffle_words(rng, original),
        garbage_kind: rng.choice(garbage[garbage_kind]),
    }
    return question, list(candidates.values()), list(candidates)


def question_item(rng: random.Random, facts: dict) -> tuple[list[list[str]], list[str]]:
    """(7 candidate question lists, their labels). The original always asks about the
    image's shape by name, so the presupposition variants differ from it in one word."""
    template = rng.choice(COLOR_QUESTIONS[1:])
    extra = [ask(rng, facts, rng.choice(("shape", "yesno")))[0] for _ in range(rng.randint(0, 2))]
    position = rng.randint(0, len(extra))

    def with_shape(shape: str) -> list[str]:
        questions = list(extra)
        questions.insert(position, template.format(shape=shape))
        return [q[0].upper() + q[1:] for q in questions]

    original = with_shape(facts["shape"])
    absent = [s for s in SHAPES if s != facts["shape"]]
    flat = " ".join(original).split()
    i = rng.randrange(len(original))
    candidates = {
        "original": original,
        "presupposition": with_shape(absent[0]),
        "presupposition_2": with_shape(absent[1]),
        "duplicated": original[: i + 1] + [original[i]] + original[i + 1 :],
        "truncated": [" ".join(flat[: rng.randint(1, max(1, len(flat) - 2))])],
        "word_shuffle": [shuffle_words(rng, " ".join(flat))],
        "off_topic": original[:i] + [rng.choice(OFF_TOPIC_QUESTIONS)] + original[i + 1 :],
    }
    labels = [k.removesuffix("_2") for k in candidates]
    return list(candidates.values()), labels


def build_demo_annotations(
    config: DemoAnnotationConfig, split_data: tuple[dict, dict] | None = None
) -> tuple[list[dict], list[dict]]:
    """(question records, answer records) in the seed's format, plus a `labels` list."""
    questions, paths = split_data or easy_vqa_split(config.split)
    rng = random.Random(config.seed)
    image_ids = sorted(questions)
    if config.size is not None:
        image_ids = sorted(rng.sample(image_ids, k=min(config.size, len(image_ids))))
    question_records, answer_records = [], []
    for image_id in image_ids:
        facts = image_facts(questions[image_id], paths[image_id])
        image = f"{image_id:05d}.png"
        candidates, labels = question_item(rng, facts)
        question_records.append(
            {
                "id": f"q-{config.split}-{image_id:05d}",
                "image": image,
                "questions": [[f"{IMAGE_TOKEN}\n{c[0]}", *c[1:]] for c in candidates],
                "score": [QUESTION_RUBRIC[label] for label in labels],
                "labels": labels,
            }
        )
        kinds = [rng.choice(ANSWER_KINDS) for _ in range(config.questions_per_image)]
        for n, kind in enumerate(kinds):
            question, answers, labels = answer_item(rng, facts, kind)
            answer_records.append(
                {
                    "id": f"a-{config.split}-{image_id:05d}-{n}",
                    "image": image,
                    "conversations": [
                        {"from": HUMAN, "value": f"{IMAGE_TOKEN}\n{question}"},
                        {"from": GPT, "value": answers},
                    ],
                    "score": [ANSWER_RUBRIC[label.split(":")[0]] for label in labels],
                    "labels": labels,
                }
            )
    return question_records, answer_records


QUESTIONS_FILE, ANSWERS_FILE = "questions.json", "answers.json"


def write_demo_annotations(config: DemoAnnotationConfig, out: Path) -> tuple[Path, Path]:
    split_data = easy_vqa_split(config.split)
    paths = split_data[1]
    question_records, answer_records = build_demo_annotations(config, split_data)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for record in question_records:
        image_id = int(record["image"].removesuffix(".png"))
        shutil.copyfile(paths[image_id], out / "images" / record["image"])
    for name, records in ((QUESTIONS_FILE, question_records), (ANSWERS_FILE, answer_records)):
        (out / name).write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    return out / QUESTIONS_FILE, out / ANSWERS_FILE
