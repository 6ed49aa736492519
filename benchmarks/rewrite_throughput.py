"""Bars: batched + length-sorted rewriting (rewrite.generation.generate) is >= 4x faster than
a per-sample `generate` loop on the same 64 prompts, and >= 0.9x the throughput of raw
batched `model.generate` on the same batches (pre-tokenised, no cache, no bookkeeping).
Model: the embedded SmolLM2-135M-Instruct, greedy. Prints one JSON line."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from align2.builders.demo_pool import DemoPoolConfig, build_demo_pool
from align2.rewrite.generation import LLM, GenerationConfig, generate, generate_batch
from align2.rewrite.rewriter import _turns, render

PROMPTS, TARGET_SPEEDUP, TARGET_VS_RAW = 64, 4.0, 0.9
CONFIG = GenerationConfig(max_new_tokens=48, batch_size=16)


def rewrite_prompts(llm: LLM) -> list[str]:
    rows = build_demo_pool(DemoPoolConfig(split="test", size=40, seed=0, defect_rate=0.0))
    turns = _turns([r["conversations"] for r in rows], questions=True)[:PROMPTS]
    system = render("system.j2")
    return [
        llm.chat(
            system,
            render("rewrite_answer.j2", question=t.question, answer=t.text)
            if t.role == "gpt"
            else render("rewrite_question.j2", question=t.text),
        )
        for t in turns
    ]


@torch.inference_mode()
def raw_batched_seconds(llm: LLM, prompts: list[str]) -> float:
    model, tokenizer = llm.load()
    lengths = [len(x) for x in tokenizer(prompts)["input_ids"]]
    ordered = [prompts[i] for i in np.argsort(lengths, kind="stable")]
    batches = [
        tokenizer(ordered[i : i + CONFIG.batch_size], return_tensors="pt", padding=True)
        for i in range(0, len(ordered), CONFIG.batch_size)
    ]
    start = time.perf_counter()
    for inputs in batches:
        model.generate(
            **inputs,
            max_new_tokens=CONFIG.max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tokenizer.pad_token_id,
        )
    return time.perf_counter() - start


def main() -> int:
    llm = LLM("smollm2")
    prompts = rewrite_prompts(llm)
    generate_batch(llm, prompts[:2], GenerationConfig(max_new_tokens=4))  # warm-up
    start = time.perf_counter()
    for prompt in prompts:
        generate_batch(llm, [prompt], CONFIG)
    per_sample = time.perf_counter() - start
    start = time.perf_counter()
    generate(llm, prompts, CONFIG, cache=None)
    ours = time.perf_counter() - start
    raw = raw_batched_seconds(llm, prompts)
    speedup, vs_raw = per_sample / ours, raw / ours
    print(
        json.dumps(
            {
                "name": "rewrite_batched_vs_per_sample_speedup",
                "value": round(speedup, 2),
                "target": f">= {TARGET_SPEEDUP}",
                "vs_raw_batched": round(vs_raw, 3),
                "vs_raw_batched_target": f">= {TARGET_VS_RAW}",
                "prompts": len(prompts),
                "batch_size": CONFIG.batch_size,
                "max_new_tokens": CONFIG.max_new_tokens,
                "per_sample_s": round(per_sample, 2),
                "batched_sorted_s": round(ours, 2),
                "raw_batched_s": round(raw, 2),
            }
        )
    )
    return 0 if speedup >= TARGET_SPEEDUP and vs_raw >= TARGET_VS_RAW else 1


if __name__ == "__main__":
    sys.exit(main())
