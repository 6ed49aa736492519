"""Batched reward scoring with a loaded backbone: the one forward path that evaluation and
the scoring pipeline share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from align2.reward.backbones import Backbone


def native_bf16() -> bool:
    """bfloat16 in hardware: a CUDA GPU that has it, or a CPU with AVX512-BF16 or AMX (without
    them, CPU bfloat16 is emulated and slower than float32)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu, private
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def use_bf16(setting: str, *, on_cpu: bool = False) -> bool:
    """ "auto": bfloat16 autocast on GPUs that have it, and on CPUs that have it natively when
    `on_cpu`. On a 2-core AVX512-BF16 CPU, SmolLM2-135M generates 1.5x faster in batches of 32
    (benchmarks/rewrite_throughput.py), while the tiny reward models scored slower (one run of
    benchmarks/scoring_throughput.py with bf16 on: 0.73 of the raw forward vs 0.88), so
    scoring keeps float32 there. "on" / "off"."""
    if setting == "auto":
        return native_bf16() and (torch.cuda.is_available() or on_cpu)
    return setting == "on"


@torch.inference_mode()
def score_texts(
    backbone: Backbone,
    texts: Sequence[str],
    images: Sequence | None = None,
    *,
    batch_size: int = 64,
    sort_by_length: bool = True,
    bf16: bool = False,
) -> np.ndarray:
    """One scalar reward per text (with its image, for vision backbones).

    Texts are scored in length-sorted batches (less padding) and returned in input order.
    `bf16` runs the forward under bfloat16 autocast (for GPUs that support it).
    """
    model, tokenizer = backbone.model, backbone.tokenizer
    model.eval()
    device = next(model.parameters()).device
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    if sort_by_length:
        order = np.argsort([len(x) for x in ids], kind="stable")
    else:
        order = np.arange(len(ids))
    if backbone.sees_images and images is None:
        raise ValueError(f"{backbone.name} is a vision model: pass one image per text")
    scores = np.empty(len(texts), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        if backbone.processor is not None:
            batch = backbone.processor_inputs([texts[i] for i in index], [images[i] for i in index])
        else:
            batch = tokenizer.pad(
                {"input_ids": [ids[i] for i in index]},
                padding=True,
                padding_side="right",
                return_tensors="pt",
            )
            if backbone.image_processor is not None:
                batch["pixel_values"] = backbone.image_processor([images[i] for i in index])
        inputs = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(**inputs).logits.squeeze(-1).float().cpu().numpy()
        scores[index] = logits
    return scores
