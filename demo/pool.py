"""The easy-VQA demo pool: a LLaVA-style machine-generated pool with controlled defects.

easy-VQA (PyPI `easy-vqa`) is real VQA data: 64x64 images of one coloured shape with
questions and one-word answers. From it we build conversations in several styles, inject
defects at a configurable rate with a seed, and record the ground truth (`defects`, `facts`)
in columns that scorers never read, so curation quality can be measured.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from align2.data.schema import GPT, HUMAN, IMAGE_TOKEN
from align2.data.sources.llava_json import write_llava_json

COLORS = ("red", "green", "blue", "black", "gray", "yellow", "teal", "brown")
SHAPES = ("circle", "rectangle", "triangle")

DEFECTS = (
    "hallucination",  # wrong colour / shape / yes-no: only the image reveals it
    "presupposition",  # the question asks about a shape that is not there
    "truncated",  # the answer stops mid-sentence
    "off_topic",  # the answer is about something else
    "word_shuffle",  # the answer's words are shuffled
    "repeated_turns",  # a question-answer pair is repeated
    "refusal",  # boilerplate: "As an AI, I cannot see images"
    "markup_noise",  # the answer is markup or template debris
)

# Share of each type, close to LLaVA-Instruct-158k (58k / 23k / 77k).
TYPE_WEIGHTS = {"conversation": 0.37, "detail": 0.15, "complex_reasoning": 0.48}

DESCRIBE_PROMPTS = (
    "Describe the image briefly.",
    "What do you see in this image?",
    "Give a short description of the picture.",
    "Describe the image in detail.",
)
OFF_TOPIC = (
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "A balanced diet includes vegetables, whole grains and lean proteins.",
    "The stock market closed higher today after a volatile session.",
    "To bake bread, mix flour, water, yeast and salt, then let the dough rise.",
)
REFUSALS = (
    "As an AI, I cannot see images, so I am unable to answer this question.",
    "I'm sorry, but as an AI language model I can't view pictures.",
    "As an AI developed to assist, I cannot analyze the content of images.",
)
MARKUP_NOISE = (
    '<div class="answer">&nbsp;</div>',
    "[/INST] </s><s> ###",
    "{{ answer }}",
    "<p></p>\n<br/>",
    "```\n```",
)


@dataclass(frozen=True)
class DemoPoolConfig:
    split: str = "train"  # easy-VQA split: train (4,000 images) or test (1,000)
    size: int | None = None  # number of rows (one per image); None = every image
    defect_rate: float = 0.3  # share of rows that get one injected defect
    seed: int = 0

    def __post_init__(self):
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        if not 0.0 <= self.defect_rate <= 1.0:
            raise ValueError(f"defect_rate must be in [0, 1], got {self.defect_rate}")
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be a positive number of rows, got {self.size}")


def easy_vqa_split(split: str) -> tuple[dict[int, list[tuple[str, str]]], dict[int, str]]:
    import easy_vqa

    if split == "train":
        texts, answers, ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    else:
        texts, answers, ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    questions: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for text, answer, image_id in zip(texts, answers, ids, strict=True):
        questions[image_id].append((text, answer))
    return questions, paths


def _mentions(text: str, words: tuple[str, ...]) -> str | None:
    found = [w for w in words if re.search(rf"\b{w}\b", text)]
    return found[0] if found else None


def question_kind(question: str, answer: str) -> str:
    if answer in COLORS:
        return "color"
    if answer in SHAPES:
        return "shape"
    return "yesno"


def _negated(question: str) -> bool:
    return bool(re.search(r"\bnot\b|\bis no\b", question))


def derive_facts(qas: list[tuple[str, str]]) -> dict[str, str | None]:
    """The image's colour and shape, read off its questions and answers."""
    facts: dict[str, str | None] = {"color": None, "shape": None}
    for question, answer in qas:
        kind = question_kind(question, answer)
        if kind == "color":
            facts["color"] = answer
            facts["shape"] = facts["shape"] or _mentions(question, SHAPES)
        elif kind == "shape":
            facts["shape"] = answer
            facts["color"] = facts["color"] or _mentions(question, COLORS)
        elif (answer == "yes") != _negated(question):  # the mentioned attribute is present
            facts["color"] = facts["color"] or _mentions(question, COLORS)
            facts["shape"] = facts["shape"] or _mentions(question, SHAPES)
    return facts


# easy-VQA draws shapes in these exact colours on a light, slightly tinted background.
PALETTE = {
    (255, 0, 0): "red",
    (0, 255, 0): "green",
    (0, 0, 255): "blue",
    (0, 0, 0): "black",
    (128, 128, 128): "gray",
    (255, 255, 0): "yellow",
    (0, 128, 128): "teal",
    (165, 42, 42): "brown",
}


def facts_from_pixels(path: str) -> dict[str, str | None]:
    """Colour from the palette; shape from how much of its bounding box the shape fills
    (measured on train: triangle 0.51-0.67, circle 0.73-0.90, rectangle 0.91-1.0)."""
    pixels = np.asarray(PILImage.open(path).convert("RGB")).astype(int)
    values, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    order = np.argsort(-counts)
    background = values[order[0]]
    color = next(
        (
            PALETTE[tuple(int(c) for c in values[i])]
            for i in order[1:4]
            if tuple(int(c) for c in values[i]) in PALETTE
        ),
        None,
    )
    mask = np.abs(pixels - background).sum(-1) > 60
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return {"color": color, "shape": None}
    fill = mask.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    shape = "triangle" if fill < 0.70 else "circle" if fill < 0.905 else "rectangle"
    return {"color": color, "shape": shape}


def shuffle_words(rng: random.Random, text: str) -> str:
    """The words of `text` in a different order (it needs two distinct words)."""
    words = text.split()
    shuffled = list(words)
    while shuffled == words:
        rng.shuffle(shuffled)
    return " ".join(shuffled)


def image_facts(qas: list[tuple[str, str]], path: str) -> dict[str, str]:
    """Colour and shape from the questions; from the pixels where the questions are silent
    (~11% of images)."""
    facts = derive_facts(qas)
    if facts["color"] is None or facts["shape"] is None:
        seen = facts_from_pixels(path)
        facts = {k: facts[k] or seen[k] for k in facts}
    return facts


def other(rng: random.Random, value: str, choices: tuple[str, ...]) -> str:
    return rng.choice([c for c in choices if c != value])


def _ask(question: str) -> str:
    return question[0].upper() + question[1:]


def answer_text(question: str, answer: str, facts: dict, style: str) -> str:
    """One answer in one of the pool's styles: short, sentence or yes/no with a reason."""
    color, shape = facts["color"], facts["shape"]
    kind = question_kind(question, answer)
    if style == "short":
        return answer.capitalize() + "."
    if kind == "color":
        return f"The {shape} in the image is {answer}."
    if kind == "shape":
        return f"The shape in the image is a {answer}."
    subject = _mentions(question, SHAPES) or f"{_mentions(question, COLORS)} shape"
    present = (answer == "yes") != _negated(question)
    if style == "sentence":
        verb = "contains" if present else "does not contain"
        return f"{answer.capitalize()}, the image {verb} a {subject}."
    if present:
        return f"{answer.capitalize()}. The image shows a {color} {shape}, so there is a {subject}."
    return (
        f"{answer.capitalize()}. The only shape in the image is a {color} {shape}, "
        f"so there is no {subject}."
    )


def describe(facts: dict, detailed: bool) -> str:
    text = (
        f"The image shows a single {facts['color']} {facts['shape']} on a plain light background."
    )
    if detailed:
        text += f" The {facts['shape']} is filled with solid {facts['color']}, nothing else."
    return text


def _turn(question: str, answer: str, truth: str, qa=None, style="description") -> dict:
    return {"q": question, "a": answer, "truth": truth, "qa": qa, "style": style}


def _clean_turns(rng: random.Random, qas, facts: dict, kind: str) -> list[dict]:
    if kind == "detail":
        prompt = rng.choice(DESCRIBE_PROMPTS)
        detailed = "detail" in prompt
        return [_turn(prompt, describe(facts, detailed), f"{facts['color']} {facts['shape']}")]
    if kind == "complex_reasoning":
        pool = [qa for qa in qas if question_kind(*qa) == "yesno"] or qas
        picked = rng.sample(pool, k=min(len(pool), rng.choice((1, 1, 2))))
        styles = ["reason"] * len(picked)
    else:
        picked = rng.sample(qas, k=min(len(qas), rng.randint(2, 4)))
        styles = [rng.choice(("short", "sentence")) for _ in picked]
    return [
        _turn(_ask(q), answer_text(q, a, facts, style), a, (q, a), style)
        for (q, a), style in zip(picked, styles, strict=True)
    ]


def wrong_attribute(rng: random.Random, facts: dict) -> dict:
    """`facts` with its colour or its shape changed."""
    attr, values = rng.choice((("color", COLORS), ("shape", SHAPES)))
    return dict(facts, **{attr: other(rng, facts[attr], values)})


def hallucinate(rng: random.Random, turn: dict, facts: dict) -> str:
    """A fluent, self-consistent answer that contradicts the image."""
    if turn["qa"] is None:  # a description: change one attribute
        return describe(wrong_attribute(rng, facts), "filled" in turn["a"])
    question, answer = turn["qa"]
    kind = question_kind(question, answer)
    if kind != "yesno":
        claimed = other(rng, answer, COLORS if kind == "color" else SHAPES)
        return answer_text(question, claimed, dict(facts, **{kind: claimed}), turn["style"])
    claimed = "no" if answer == "yes" else "yes"
    present = (claimed == "yes") != _negated(question)
    wrong = dict(facts)
    for attr, values in (("shape", SHAPES), ("color", COLORS)):
        subject = _mentions(question, values)
        if subject:  # make the reason agree with the wrong claim
            wrong[attr] = subject if present else other(rng, subject, values)
            break
    return answer_text(question, claimed, wrong, turn["style"])


def _inject(rng: random.Random, kind: str, turns: list[dict], facts: dict) -> None:
    """Apply one defect to one randomly chosen turn, in place."""
    i = rng.randrange(len(turns))
    turn = turns[i]
    long_answer = turn["a"] if len(turn["a"].split()) >= 4 else describe(facts, True)
    if kind == "hallucination":
        turn["a"] = hallucinate(rng, turn, facts)
    elif kind == "presupposition":
        absent = other(rng, facts["shape"], SHAPES)
        turns[i] = _turn(
            f"What color is the {absent}?", f"The {absent} is {facts['color']}.", f"no {absent}"
        )
    elif kind == "truncated":
        words = long_answer.split()
        cut = rng.randint(max(1, len(words) // 3), max(1, 2 * len(words) // 3))
        turn["a"] = " ".join(words[:cut]).rstrip(".,")
    elif kind == "off_topic":
        turn["a"] = rng.choice(OFF_TOPIC)
    elif kind == "word_shuffle":
        turn["a"] = shuffle_words(rng, long_answer)
    elif kind == "repeated_turns":
        turns.insert(i + 1, dict(turn))
    elif kind == "refusal":
        turn["a"] = rng.choice(REFUSALS)
    elif kind == "markup_noise":
        turn["a"] = rng.choice(MARKUP_NOISE)
    else:
        raise ValueError(f"unknown defect kind {kind!r}; known: {', '.join(DEFECTS)}")


def build_demo_pool(config: DemoPoolConfig) -> list[dict]:
    """Rows in LLaVA form (image = absolute path into the package) plus ground-truth columns."""
    questions, paths = easy_vqa_split(config.split)
    rng = random.Random(config.seed)
    image_ids = sorted(questions)
    if config.size is not None:
        image_ids = sorted(rng.sample(image_ids, k=min(config.size, len(image_ids))))
    rows = []
    types, weights = zip(*TYPE_WEIGHTS.items(), strict=True)
    for image_id in image_ids:
        qas = questions[image_id]
        facts = image_facts(qas, paths[image_id])
        kind = rng.choices(types, weights)[0]
        turns = _clean_turns(rng, qas, facts, kind)
        defects = []
        if rng.random() < config.defect_rate:
            defects.append(rng.choice(DEFECTS))
            _inject(rng, defects[0], turns, facts)
        # LLaVA puts <image> before or after the first question; the pool does both.
        first = turns[0]["q"]
        first = f"{IMAGE_TOKEN}\n{first}" if rng.random() < 0.5 else f"{first}\n{IMAGE_TOKEN}"
        texts = [(first, turns[0]["a"])] + [(t["q"], t["a"]) for t in turns[1:]]
        rows.append(
            {
                "id": f"easyvqa-{config.split}-{image_id:05d}",
                "image": paths[image_id],
                "conversations": [
                    {"from": role, "value": text}
                    for q, a in texts
                    for role, text in ((HUMAN, q), (GPT, a))
                ],
                "type": kind,
                "defects": defects,
                "facts": {
                    "color": facts["color"],
                    "shape": facts["shape"],
                    "answers": [t["truth"] for t in turns],
                },
            }
        )
    return rows


POOL_FILE, TRUTH_FILE, IMAGE_DIR = "llava_pool.json", "truth.jsonl", "images"


def write_demo_pool(rows: list[dict], out: Path) -> Path:
    """LLaVA JSON + images folder + truth file. Same rows -> byte-identical files."""
    out = Path(out)
    images = out / IMAGE_DIR
    images.mkdir(parents=True, exist_ok=True)
    llava, truth = [], []
    for row in rows:
        name = f"{row['id']}.png"
        shutil.copyfile(row["image"], images / name)
        llava.append(
            {
                "id": row["id"],
                "image": name,
                "conversations": row["conversations"],
                "type": row["type"],
            }
        )
        truth.append(
            json.dumps({"id": row["id"], "defects": row["defects"], "facts": row["facts"]})
        )
    write_llava_json(llava, out / POOL_FILE)
    (out / TRUTH_FILE).write_text("\n".join(truth) + "\n", encoding="utf-8")
    return out / POOL_FILE
