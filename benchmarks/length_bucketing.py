"""Bar: length-bucketed scoring (sort by token length within the window, restore order) is
>= 1.5x faster than unsorted batches on a LLaVA-like length mix. Same texts, same model
(the embedded SmolLM2-135M as a text reward model), same batch size; scores must agree.
Prints one JSON line."""

from __future__ import annotations

import json
import random
import sys
import time

import numpy as np

from align2.models.backbones import build_backbone
from align2.models.scoring import score_texts

TARGET, TEXTS, BATCH = 1.5, 256, 32
# LLaVA-Instruct-158k's mix: conversation 37% (short turns), detail 15% (a paragraph),
# complex reasoning 48% (a long paragraph); answer lengths in words.
MIX = {"conversation": (0.37, 8, 40), "detail": (0.15, 60, 120), "complex": (0.48, 80, 200)}
WORDS = tuple("the a red small dog sits near two people on grass while one man holds a cup".split())


def llava_like_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    kinds = list(MIX)
    weights = [MIX[k][0] for k in kinds]
    texts = []
    for _ in range(n):
        _, lo, hi = MIX[rng.choices(kinds, weights)[0]]
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))
        texts.append(f"<image>\nQuestion: What is happening in the image?\nAnswer: {answer}\n")
    return texts


def main() -> int:
    backbone = build_backbone("smollm2")
    texts = llava_like_texts(TEXTS)
    score_texts(backbone, texts[:BATCH], batch_size=BATCH)  # warm-up
    seconds, scores = {}, {}
    for name, sort in (("unsorted", False), ("bucketed", True)):
        start = time.perf_counter()
        scores[name] = score_texts(backbone, texts, batch_size=BATCH, sort_by_length=sort)
        seconds[name] = time.perf_counter() - start
    value = seconds["unsorted"] / seconds["bucketed"]
    lengths = [len(x) for x in backbone.tokenizer(texts)["input_ids"]]
    agree = float(np.max(np.abs(scores["unsorted"] - scores["bucketed"])))
    print(
        json.dumps(
            {
                "name": "length_bucketed_vs_unsorted_speedup",
                "value": round(value, 2),
                "target": f">= {TARGET}",
                "texts": TEXTS,
                "batch_size": BATCH,
                "tokens_mean": round(float(np.mean(lengths)), 1),
                "tokens_max": int(np.max(lengths)),
                "unsorted_s": round(seconds["unsorted"], 2),
                "bucketed_s": round(seconds["bucketed"], 2),
                "max_score_difference": agree,
            }
        )
    )
    return 0 if value >= TARGET and agree < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
