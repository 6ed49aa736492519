"""`align2 reward convert`: the seed authors' released reward models -> align2's LLaVA
sequence classifier, once.

Their reward models are LoRA adapters (r=128, alpha=256) on liuhaotian/llava-v1.5-7b, saved
by the LLaVA codebase (DCDmllm/Align2LLaVA, reward_model/llava/train/train.py): PEFT's
`adapter_config.json` and `adapter_model.{safetensors,bin}` for the language model's linear
layers, and `non_lora_trainables.bin` for the rest that trained (the projector and the
score head), in the LLaVA codebase's parameter names. Their loader
(reward_model/llava/model/builder.py) applies the non-LoRA weights to the base, then merges
the adapter. This does the same onto the base in the llava-hf layout
(`llava-hf/llava-1.5-7b-hf` holds liuhaotian/llava-v1.5-7b's weights with its vision tower
and processor) and saves one safetensors model that `align2 curate` loads like any other.

`.bin` files are pickles: they are read here only, with `torch.load(weights_only=True)`,
which refuses anything but tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from align2.errors import Align2Error
from align2.reward.train import METADATA_FILE

DEFAULT_BASE = "llava-hf/llava-1.5-7b-hf"
ADAPTER_CONFIG, NON_LORA = "adapter_config.json", "non_lora_trainables.bin"
# LLaVA codebase name prefix -> llava-hf (transformers 5) name prefix, in align2's classifier.
RENAMES = (
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.vision_tower.vision_tower.", "model.vision_tower."),
    ("model.embed_tokens.", "model.language_model.embed_tokens."),
    ("model.layers.", "model.language_model.layers."),
    ("model.norm.", "model.language_model.norm."),
    ("score.", "score."),
)


def llava_hf_name(name: str) -> str:
    """A parameter's name in the llava-hf layout, from its LLaVA codebase name."""
    for old, new in RENAMES:
        if name.startswith(old):
            return new + name[len(old) :]
    raise Align2Error(f"no llava-hf counterpart for the checkpoint's parameter {name!r}")


def _codebase_name(key: str) -> str:
    """The checkpoint's keys carry PEFT's names: its wrapper prefix (`base_model.model.`, as
    their loader strips it) and, for a layer that also has LoRA, `.base_layer`."""
    for prefix in ("base_model.model.", "base_model."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return key.replace(".base_layer.", ".")


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (weights_only refuses any non-tensor pickle)
        raise Align2Error(f"{path}: not a plain tensor checkpoint ({err})") from None


def _adapter(checkpoint: Path) -> tuple[dict[str, torch.Tensor], float]:
    """The LoRA weights and their scale (alpha / r, or alpha / sqrt(r) with rsLoRA)."""
    config_path = checkpoint / ADAPTER_CONFIG
    if not config_path.is_file():
        raise Align2Error(f"{checkpoint}: no {ADAPTER_CONFIG}; is it a LoRA checkpoint?")
    config = json.loads(config_path.read_text())
    r, alpha = config["r"], config["lora_alpha"]
    scale = alpha / (r**0.5) if config.get("use_rslora") else alpha / r
    if (checkpoint / "adapter_model.safetensors").is_file():
        weights = load_file(checkpoint / "adapter_model.safetensors")
    elif (checkpoint / "adapter_model.bin").is_file():
        weights = _load_bin(checkpoint / "adapter_model.bin")
    else:
        raise Align2Error(f"{checkpoint}: no adapter_model.safetensors or adapter_model.bin")
    return weights, scale


def convert_llava_checkpoint(
    checkpoint: str | Path, out: str | Path, *, kind: str, base: str = DEFAULT_BASE
) -> Path:
    """Merge the checkpoint into `base` (a llava-hf model: Hub id or folder) and save align2's
    `kind` (question | answer) reward model (safetensors, the base's processor) to `out`."""
    from transformers import AutoModelForSequenceClassification, AutoProcessor

    from align2.models import llava  # noqa: F401 (registers the LLaVA sequence classifier)

    checkpoint, out = Path(checkpoint), Path(out)
    lora, scale = _adapter(checkpoint)
    if not (checkpoint / NON_LORA).is_file():
        raise Align2Error(f"{checkpoint}: no {NON_LORA} (the projector and the score head)")
    non_lora = _load_bin(checkpoint / NON_LORA)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=1, use_safetensors=True, dtype=torch.float32
    )
    state = model.state_dict()

    def target(codebase_name: str) -> torch.Tensor:
        name = llava_hf_name(codebase_name)
        if name not in state:
            raise Align2Error(f"{base} has no parameter {name!r} (from {codebase_name!r})")
        return state[name]

    with torch.no_grad():
        # Their loader: non-LoRA weights onto the base first, then the adapter merged.
        for key, value in non_lora.items():
            weight = target(_codebase_name(key))
            if weight.shape != value.shape:
                raise Align2Error(
                    f"{key}: shape {tuple(value.shape)} does not fit {tuple(weight.shape)} in "
                    f"{base}; is it the checkpoint's base?"
                )
            weight.copy_(value.to(weight.dtype))
        for key, down in lora.items():
            if ".lora_A." not in key:
                continue
            up = lora[key.replace(".lora_A.", ".lora_B.")]
            module = _codebase_name(key).split(".lora_A.")[0]
            weight = target(module + ".weight")
            weight += scale * (up.to(torch.float32) @ down.to(torch.float32)).to(weight.dtype)
    model.save_pretrained(out, safe_serialization=True)
    AutoProcessor.from_pretrained(base).save_pretrained(out)
    metadata = {"kind": kind, "converted_from": str(checkpoint), "base": base, "lora_scale": scale}
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return out
