"""A synthetic pool shaped like LLaVA-Instruct-158k, for scale tests and benchmarks.

What it copies is the shape, not the content: the type mix (58k conversation, 23k detail,
77k complex reasoning), 2-5 rounds per conversation, answers of ~45 words a turn in
conversations, ~110 in detail and ~130 in reasoning with a long tail, ~1.94 rows per image
and the id convention (the COCO image id, shared by every row on that image), written as the
combined `llava_instruct_150k.json` (no `type` field) or as the three type files. Images are
JPEGs of random blocks, distinct enough that no two are near-duplicates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from align2.data.schema import GPT, HUMAN, IMAGE_TOKEN
from align2.data.sources.llava_json import write_llava_json

TYPE_FILES = {
    "conversation": "conversation_58k.json",
    "detail": "detail_23k.json",
    "complex_reasoning": "complex_reasoning_77k.json",
}
COMBINED_FILE = "llava_instruct_150k.json"
TYPE_SHARES = {"conversation": 58, "detail": 23, "complex_reasoning": 77}
ROWS_PER_IMAGE = {1: 0.25, 2: 0.56, 3: 0.19}  # mean 1.94, as in LLaVA-Instruct-158k
MEAN_ANSWER_WORDS = {"conversation": 45, "detail": 110, "complex_reasoning": 130}
VOCABULARY = (
    "the a man woman dog cat bus street table plate red blue green white black wooden large "
    "small two three people standing sitting holding near next to behind in on with under "
    "sky tree building car train kitchen room window light shadow scene image shows appears "
    "likely because which could would may suggests background foreground left right middle "
    "several some while and or but also this that there is are was were its their his her"
).split()


@dataclass(frozen=True)
class LlavaShapedConfig:
    rows: int = 3000
    seed: int = 0
    image_size: tuple[int, int] = (640, 480)  # COCO's most common size
    long_answer_words: int | None = None  # one reasoning answer this long (the long tail's end)


def _words(rng: random.Random, n: int) -> str:
    text = " ".join(rng.choice(VOCABULARY) for _ in range(max(1, n)))
    return text[0].upper() + text[1:] + "."


def _answer_words(rng: random.Random, kind: str) -> int:
    mean = MEAN_ANSWER_WORDS[kind]
    # Lognormal with that mean (sigma 0.45): reasoning answers reach several hundred words.
    sigma = 0.45
    return max(3, int(rng.lognormvariate(np.log(mean) - sigma**2 / 2, sigma)))


def _conversation(rng: random.Random, kind: str) -> list[dict]:
    rounds = rng.randint(2, 5) if kind == "conversation" else 1
    turns = []
    for i in range(rounds):
        question = _words(rng, rng.randint(6, 14)).rstrip(".") + "?"
        if i == 0:
            question = (
                f"{IMAGE_TOKEN}\n{question}" if rng.random() < 0.5 else f"{question}\n{IMAGE_TOKEN}"
            )
        turns += [
            {"from": HUMAN, "value": question},
            {"from": GPT, "value": _words(rng, _answer_words(rng, kind))},
        ]
    return turns


def _image(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    blocks = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST)


def build_llava_shaped(config: LlavaShapedConfig, image_folder: Path) -> list[dict]:
    """The pool's rows (each with its `type`), its images written to `image_folder`."""
    rng = random.Random(config.seed)
    pixels = np.random.default_rng(config.seed)
    image_folder = Path(image_folder)
    image_folder.mkdir(parents=True, exist_ok=True)
    total = sum(TYPE_SHARES.values())
    kinds = [
        k for k, share in TYPE_SHARES.items() for _ in range(round(config.rows * share / total))
    ]
    kinds = (kinds + ["complex_reasoning"] * config.rows)[: config.rows]  # rounding
    rng.shuffle(kinds)
    counts, weights = list(ROWS_PER_IMAGE), list(ROWS_PER_IMAGE.values())
    rows: list[dict] = []
    image_number = 0
    while len(rows) < config.rows:
        image_number += 1
        image_id = f"{image_number * 7919 % 10**12:012d}"
        name = f"{image_id}.jpg"
        _image(pixels, config.image_size).save(image_folder / name, quality=85)
        for _ in range(min(rng.choices(counts, weights)[0], config.rows - len(rows))):
            kind = kinds[len(rows)]
            turns = _conversation(rng, kind)
            rows.append({"id": image_id, "image": name, "conversations": turns, "type": kind})
    if config.long_answer_words:
        long_row = next(i for i, r in enumerate(rows) if r["type"] == "complex_reasoning")
        rows[long_row]["conversations"][1]["value"] = _words(rng, config.long_answer_words)
    return rows


def write_llava_shaped(rows: list[dict], out: Path, *, split_by_type: bool) -> list[Path]:
    """The combined file (no `type` field, as LLaVA ships it) or one file per type."""
    out = Path(out)
    if not split_by_type:
        path = out / COMBINED_FILE
        write_llava_json([{k: v for k, v in r.items() if k != "type"} for r in rows], path)
        return [path]
    paths = []
    for kind, name in TYPE_FILES.items():
        write_llava_json(
            [{k: v for k, v in r.items() if k != "type"} for r in rows if r["type"] == kind],
            out / name,
        )
        paths.append(out / name)
    return paths
