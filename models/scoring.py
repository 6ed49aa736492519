"""Batched reward scoring with a loaded backbone: the one forward path that evaluation and
the scoring pipeline share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from align2.models.backbones import Backbone


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


def text_context(backbone: Backbone) -> int | None:
    """The most tokens one sequence's text may hold (a Hub VLM's image tokens included; tiny-vlm
    places its image tokens apart), or None when the config names no limit."""
    config = backbone.model.config
    limit = getattr(config.get_text_config(), "max_position_embeddings", None)
    return int(limit) if limit else None


def cut_to_tokens(tokenizer, text: str, excess: int) -> str:
    """`text` without its last `excess` tokens: the beginning (image, question, the start of
    the answer) is what a reward model reads first and what stays."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    keep = max(0, len(offsets) - excess)
    return text[: offsets[keep][0]] if keep < len(offsets) else text


def truncate_ids(ids: list[list[int]], limit: int) -> np.ndarray:
    """Cut each token list to `limit`, in place, its beginning kept; the tokens cut from each."""
    cut = np.zeros(len(ids), dtype=np.int32)
    for i, row in enumerate(ids):
        if len(row) > limit:
            cut[i], ids[i] = len(row) - limit, row[:limit]
    return cut


@torch.inference_mode()
def score_texts(
    backbone: Backbone,
    texts: Sequence[str],
    images: Sequence | None = None,
    *,
    batch_size: int = 64,
    sort_by_length: bool = True,
    bf16: bool = False,
    return_cut: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """One scalar reward per text (with its image, for vision backbones).

    Texts are scored in length-sorted batches (less padding) and returned in input order.
    A text longer than the model's context is cut to fit, its beginning kept; with
    `return_cut`, the tokens cut from each text come back too. `bf16` runs the forward
    under bfloat16 autocast (for GPUs that support it).
    """
    model, tokenizer = backbone.model, backbone.tokenizer
    model.eval()
    device = next(model.parameters()).device
    limit = text_context(backbone)
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    cut = np.zeros(len(texts), dtype=np.int32)
    if limit is not None and backbone.processor is None:
        cut = truncate_ids(ids, limit)
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
            batch = _processor_batch(
                backbone, [texts[i] for i in index], [images[i] for i in index], limit
            )
            cut[index] = batch.pop("cut_tokens")
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
    return (scores, cut) if return_cut else scores


def _processor_batch(backbone: Backbone, texts: list[str], images: list, limit: int | None):
    """A Hub VLM's batch, each text cut so that it and its image tokens fit the context (the
    processor decides how many image tokens an image takes); encoded again only when cut."""
    batch = backbone.processor_inputs(texts, images)
    lengths = batch["attention_mask"].sum(-1).numpy()
    cut = np.zeros(len(texts), dtype=np.int32)
    if limit is not None and lengths.max() > limit:
        for i in np.flatnonzero(lengths > limit):
            cut[i] = lengths[i] - limit
            texts[i] = cut_to_tokens(backbone.tokenizer, texts[i], int(cut[i]))
        batch = backbone.processor_inputs(texts, images)
    batch["cut_tokens"] = cut
    return batch
