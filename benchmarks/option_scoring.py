"""Option scoring (the LLM styler and the rewrite review read next-token probabilities) with
the batch's shared prompt prefix encoded once, against plain left-padded batches: >= 1.5x.

SmolLM2-135M (the embedded LLM) on the LLM styler's prompts for 64 demo-pool rows, batches
of 8, length-sorted as the styler sends them; float32. Both sides run twice, alternating,
and the faster run of each counts. Also prints the largest probability difference between
the two. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from align2.builders.llm_styler import LABELS, SYSTEM, style_prompt
from align2.demo.pool import DemoPoolConfig, build_demo_pool
from align2.embedded import SMOLLM2
from align2.models.generation import LLM, option_probabilities

TARGET, ROWS, BATCH = 1.5, 64, 8


@torch.inference_mode()
def left_padded(llm: LLM, prompts: list[str], options: tuple[str, ...]) -> np.ndarray:
    """The reference: each batch padded on the left and run whole."""
    model, tokenizer = llm.load()
    option_ids = [tokenizer(o, add_special_tokens=False)["input_ids"][0] for o in options]
    out = []
    for start in range(0, len(prompts), BATCH):
        batch = prompts[start : start + BATCH]
        inputs = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        logits = model(**inputs).logits[:, -1, :].float()
        out.append(torch.softmax(torch.log_softmax(logits, -1)[:, option_ids], -1).numpy())
    return np.concatenate(out)


def main() -> int:
    rows = build_demo_pool(DemoPoolConfig(split="test", size=ROWS, seed=0))
    llm = LLM(SMOLLM2)
    llm.load()
    prompts = sorted((llm.chat(SYSTEM, style_prompt(r["conversations"])) for r in rows), key=len)
    runs: dict[str, list[float]] = {"left_padded": [], "shared_prefix": []}
    for _ in range(2):
        start = time.perf_counter()
        reference = left_padded(llm, prompts, LABELS)
        runs["left_padded"].append(round(time.perf_counter() - start, 2))
        start = time.perf_counter()
        shared = option_probabilities(llm, prompts, LABELS, BATCH)
        runs["shared_prefix"].append(round(time.perf_counter() - start, 2))
    value = round(min(runs["left_padded"]) / min(runs["shared_prefix"]), 2)
    print(
        json.dumps(
            {
                "name": "option_scoring_shared_prefix_speedup",
                "value": value,
                "target": f">= {TARGET}",
                "prompts": len(prompts),
                "batch_size": BATCH,
                "runs_s": runs,
                "max_probability_difference": float(np.abs(reference - shared).max()),
                "same_choices": bool((reference.argmax(1) == shared.argmax(1)).all()),
            }
        )
    )
    return 0 if value >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
