"""Reward-model backbones: every one is a sequence classifier with one scalar output read at
the last non-pad token.

- `tiny-vlm`: the embedded vision default (random init, SmolLM2's tokenizer), see tiny_vlm.py
- `tiny-text`: a 2-layer Llama classifier built from a config (tests, smoke runs)
- `smollm2`: the embedded SmolLM2-135M as a text classifier
- a `.gguf` file, a local folder or a Hub id: `AutoModelForSequenceClassification`: causal
  LMs read the text alone; vision-language models (Gemma3ForSequenceClassification,
  Qwen3_5ForSequenceClassification, LLaVA + score head from models/llava.py) read it with the
  image through their own processor (`AutoProcessor`)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import validate_repo_id
from PIL import Image
from transformers import (
    AutoModelForSequenceClassification,
    AutoProcessor,
    AutoTokenizer,
    BatchFeature,
    LlamaConfig,
    LlamaForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
)

from align2.data.schema import IMAGE_TOKEN
from align2.embedded import SMOLLM2, smollm2_model_path, smollm2_tokenizer_path
from align2.errors import Align2Error
from align2.models.llava import LlavaForSequenceClassification  # noqa: F401 (registers it)
from align2.models.tiny_vlm import (
    TinyVLMConfig,
    TinyVLMForSequenceClassification,
    pixel_values,
)

TINY_VLM, TINY_TEXT = "tiny-vlm", "tiny-text"
WEIGHTS = ("*.json", "*.safetensors")  # what decides a saved model's scores


@dataclass
class Backbone:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    image_processor: Callable[[list], torch.Tensor] | None  # tiny-vlm: images -> pixel values
    name: str
    processor: ProcessorMixin | None = None  # a Hub VLM's: expands image placeholders

    @property
    def sees_images(self) -> bool:
        return self.image_processor is not None or self.processor is not None

    def processor_inputs(
        self, texts: list[str], images: list[Image.Image], *, padding: bool = True
    ) -> BatchFeature:
        """A Hub VLM's inputs, right-padded: the templates' `<image>` becomes the processor's
        placeholder, which it expands to as many image tokens as the model's vision tower
        gives (pixel values, and token types or grid sizes where the model needs them)."""
        placeholder = image_placeholder(self.processor)
        return self.processor(
            text=[text.replace(IMAGE_TOKEN, placeholder) for text in texts],
            images=[[image.convert("RGB")] for image in images],
            padding=padding,
            padding_side="right",
            return_tensors="pt" if padding else None,
        )

    def save_preprocessing(self, folder: str | Path) -> None:
        (self.processor or self.tokenizer).save_pretrained(folder)


def image_placeholder(processor: ProcessorMixin) -> str:
    """What a processor expands into one image's tokens: `<image>` (LLaVA),
    `<start_of_image>` (Gemma3), `<|vision_start|><|image_pad|><|vision_end|>` (Qwen-VL)."""
    start = getattr(processor, "vision_start_token", "") or ""
    end = getattr(processor, "vision_end_token", "") or ""
    return start + processor.image_token + end


def _tokenizer_with_image_token() -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_path())
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tokenizer


def image_processor_for(model: PreTrainedModel) -> Callable | None:
    if isinstance(model.config, TinyVLMConfig):
        return partial(pixel_values, size=model.config.image_size)
    return None


def build_backbone(
    name: str,
    *,
    seed: int = 0,
    revision: str | None = None,
    trust_remote_code: bool = False,
    **config_overrides,
) -> Backbone:
    """A fresh reward model (random score head) for `name`."""
    torch.manual_seed(seed)  # the score head (and tiny models) start from the seed
    if name == TINY_VLM:
        tokenizer = _tokenizer_with_image_token()
        config = TinyVLMConfig(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            # The answer template's "\nAnswer:" marker (reward/templates.py), one token here.
            answer_marker_id=tokenizer.convert_tokens_to_ids("Answer"),
            **config_overrides,
        )
        model = TinyVLMForSequenceClassification(config)
        return Backbone(model, tokenizer, image_processor_for(model), name)
    if name == TINY_TEXT:
        tokenizer = _tokenizer_with_image_token()
        defaults = dict(
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
        )
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
            **{**defaults, **config_overrides},
        )
        return Backbone(LlamaForSequenceClassification(config), tokenizer, None, name)
    kwargs = {"num_labels": 1, "revision": revision, "trust_remote_code": trust_remote_code}
    if name == SMOLLM2:
        path, kwargs = smollm2_model_path(), {"num_labels": 1}
    elif name.endswith(".gguf"):
        gguf = Path(name)
        model = AutoModelForSequenceClassification.from_pretrained(
            gguf.parent, gguf_file=gguf.name, num_labels=1
        )
        model.hf_quantizer = None
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        return Backbone(_with_pad(model, tokenizer), tokenizer, None, name)
    else:
        path = name
    model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    return _loaded(model, path, name, kwargs.get("revision"), trust_remote_code)


def _loaded(
    model: PreTrainedModel,
    path: str | Path,
    name: str,
    revision: str | None,
    trust_remote_code: bool,
) -> Backbone:
    """A loaded classifier with its tokenizer, and its processor if it is a Hub VLM."""
    options = {"revision": revision, "trust_remote_code": trust_remote_code}
    image_processor = image_processor_for(model)
    if image_processor is None and hasattr(model.config, "vision_config"):
        processor = AutoProcessor.from_pretrained(path, **options)
        if not isinstance(processor, ProcessorMixin) or not hasattr(processor, "image_token"):
            # Without one the model would train and score on text alone, never seeing an image.
            raise Align2Error(
                f"{name} is a vision-language model ({type(model).__name__}) but its processor "
                f"({type(processor).__name__}) has no image token to place the image with"
            )
        tokenizer = processor.tokenizer
    else:
        processor, tokenizer = None, AutoTokenizer.from_pretrained(path, **options)
    return Backbone(_with_pad(model, tokenizer), tokenizer, image_processor, name, processor)


def _with_pad(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The classifier reads its score at the last non-pad token; composite (VLM) configs keep
    # the pad id in their text config.
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    return model


def load_reward_model(
    path: str | Path, *, revision: str | None = None, trust_remote_code: bool = False
) -> Backbone:
    """A saved reward model (a folder or a Hub id), ready to score. safetensors only."""
    model = AutoModelForSequenceClassification.from_pretrained(
        path, revision=revision, use_safetensors=True, trust_remote_code=trust_remote_code
    )
    model.eval()
    return _loaded(model, path, str(path), revision, trust_remote_code)


def check_model(model: str | Path, what: str = "model") -> None:
    """A one-line error now, before any work, for what could never load: a folder without a
    config or safetensors weights, a file, or a name that is no Hub id."""
    folder = Path(model)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise Align2Error(f"{what} folder {folder} has no config.json: not a saved model")
        if not any(folder.glob("*.safetensors")):
            raise Align2Error(
                f"{what} folder {folder} has no .safetensors weights (align2 loads safetensors "
                "only; convert a .bin checkpoint first)"
            )
        return
    if folder.exists():
        raise Align2Error(f"{what} {model} is a file; pass a model folder or a Hub id")
    try:
        validate_repo_id(str(model))
    except HFValidationError:
        raise Align2Error(
            f"{what} {str(model)!r} is neither a folder here nor a Hub id (org/name)"
        ) from None


def model_fingerprint(path: str | Path, revision: str | None = None) -> str:
    """What identifies a reward model's weights, for cache keys: a local folder hashes its
    config and weight files; a Hub id is its resolved commit (downloading if needed)."""
    folder = Path(path)
    if not folder.is_dir():
        try:
            folder = Path(snapshot_download(str(path), revision=revision, allow_patterns=WEIGHTS))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise Align2Error(f"cannot fetch model {path}: {detail}") from None
        return f"{path}@{folder.name}"  # snapshots/<commit>
    digest = hashlib.sha256()
    for file in sorted(f for pattern in WEIGHTS for f in folder.glob(pattern)):
        digest.update(f"{file.name}:{file.stat().st_size}:".encode())
        with file.open("rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()
