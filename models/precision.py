"""Which precision generation runs in, decided by measurement where the hardware leaves it
open. A CPU with bfloat16 instructions may still generate slower in bfloat16: on an AMD
EPYC with AVX512-BF16, SmolLM2-135M batches ran 1.5x faster in bfloat16; on an Intel Xeon
with AMX-BF16, per-sample generation ran 99 s in bfloat16 against 38 s in float32. So on
such a CPU a short probe generates in both, once per machine, model and torch version, and
the choice is cached (`$HF_HOME/align2/precision.json`). Float32 wins unless bfloat16 is
clearly faster: it is exact, and the choice changes the text."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass

import torch
from datasets.fingerprint import Hasher

from align2.embedded import cache_dir
from align2.models.scoring import native_bf16

PROBE_PROMPTS, PROBE_TOKENS, PROBE_REPEATS = 8, 16, 2
MARGIN = 1.15  # bfloat16 must be this much faster to be chosen
CACHE_FILE = "precision.json"


@dataclass(frozen=True)
class Precision:
    bf16: bool
    reason: str  # why: asked for, the hardware, or the measurement

    @property
    def setting(self) -> str:
        return "on" if self.bf16 else "off"


def generation_precision(llm, setting: str) -> Precision:
    """The precision `llm` generates in for a `bf16` setting ("auto", "on", "off")."""
    if setting != "auto":
        return Precision(setting == "on", f"asked for (bf16 {setting})")
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return Precision(bf16, "a GPU " + ("with" if bf16 else "without") + " bfloat16")
    if not native_bf16():
        return Precision(False, "this CPU has no bfloat16 instructions")
    return measured_precision(llm)


def measured_precision(llm) -> Precision:
    """Float32 or bfloat16 on this CPU for `llm`, by a probe timed once and cached."""
    key = Hasher.hash([_cpu(), torch.__version__, llm.fingerprint, PROBE_PROMPTS, PROBE_TOKENS])
    path = cache_dir() / CACHE_FILE
    measured = _read(path).get(key)
    source = "cached"
    if measured is None:
        measured, source = _measure(llm), "measured now"
        _write(path, {**_read(path), key: measured})
    bf16 = measured["bfloat16_s"] * MARGIN < measured["float32_s"]
    return Precision(
        bf16,
        f"{measured['float32_s']:.2f} s in float32, {measured['bfloat16_s']:.2f} s in bfloat16 "
        f"for a probe batch on {measured['cpu']} ({source})",
    )


def _measure(llm) -> dict:
    model, tokenizer = llm.load()
    prompt = llm.chat("You are concise.", "Describe a red circle on a white background.")
    batch = tokenizer([prompt] * PROBE_PROMPTS, return_tensors="pt", padding=True)
    seconds = {}
    for name, bf16 in (("float32_s", False), ("bfloat16_s", True)):
        runs = []
        for _ in range(PROBE_REPEATS + 1):  # the first run warms up
            start = time.perf_counter()
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                model.generate(
                    **batch,
                    max_new_tokens=PROBE_TOKENS,
                    min_new_tokens=PROBE_TOKENS,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            runs.append(time.perf_counter() - start)
        seconds[name] = round(min(runs[1:]), 4)
    return {**seconds, "cpu": _cpu()}


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read(path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write(path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new
