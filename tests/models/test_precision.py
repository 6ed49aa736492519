"""Generation precision: asked for, or measured once per machine and model, then cached."""

import json

from align2.embedded import cache_dir
from align2.models.generation import LLM
from align2.models.precision import CACHE_FILE, MARGIN, generation_precision, measured_precision
from align2.models.scoring import native_bf16


def test_an_explicit_setting_is_taken_as_asked(tiny_lm):
    llm = LLM(tiny_lm)
    assert generation_precision(llm, "on").bf16 and not generation_precision(llm, "off").bf16
    assert "asked for" in generation_precision(llm, "off").reason


def test_the_measurement_is_made_once_and_read_back(tiny_lm):
    llm = LLM(tiny_lm)
    (cache_dir() / CACHE_FILE).unlink(missing_ok=True)  # earlier tests may have measured it
    first = measured_precision(llm)
    assert "measured now" in first.reason
    entries = json.loads((cache_dir() / CACHE_FILE).read_text())
    (timings,) = [e for e in entries.values() if e["float32_s"] > 0 and e["bfloat16_s"] > 0]
    assert first.bf16 == (timings["bfloat16_s"] * MARGIN < timings["float32_s"])
    again = measured_precision(llm)
    assert again.bf16 == first.bf16 and "cached" in again.reason
    auto = generation_precision(llm, "auto")
    if native_bf16():  # the probe decides on a CPU with bfloat16 instructions
        assert auto == again
    else:
        assert not auto.bf16 and "no bfloat16 instructions" in auto.reason
