"""Capability scores: mmSSR's 14 capabilities, one float column per capability, from either
mmSSR's own output files or a prompted model.

Files: one JSON Lines file per capability in one folder, named after it in snake_case
(`object_spatial_understanding.jsonl`, ...), lines `{"idx": ..., "pred_response": "4"}`. A
string `idx` is a row's id; an integer is its position in the source. mmSSR's `style.jsonl`
beside them, when there, gives the rows it names their styles (comma-separated).
A reply that is not an integer becomes a missing score (NaN), counted in the report; a row
no file line names is missing too. A missing score keeps a row out of that capability's
pool only.

A prompted scorer: a causal LM (Hub id, folder, `.gguf`) or a vision-language model (an
image-text-to-text model, as mmSSR's own `mengyaolyu/mmssr-7b-scorer`, which then sees the
row's image) is asked mmSSR's question per capability after the sample, and the score is the
expected value of its next-token probabilities over "0".."5": one forward pass, no
generation. For a causal LM the sample is the prompts' shared beginning, so
`option_probabilities` encodes it once per row and reuses its KV cache for the 14 short
endings; a VLM reads the 14 prompts as one batch with the image in each. There is no
embedded default: no small model here rates helpfulness usefully (SmolLM2-135M's ratings
move with the row, not the capability).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from align2.data.schema import GPT, HUMAN, IMAGE_TOKEN
from align2.data.shards import LOCAL, Engine, map_in_shards
from align2.errors import Align2Error
from align2.models.generation import OptionReader

CAPABILITIES = (
    "object spatial understanding",
    "attribute identification",
    "logical deduction",
    "scene understanding",
    "fine-grained recognition",
    "language generation",
    "in-context learning",
    "comparative analysis",
    "activity recognition",
    "causal reasoning",
    "humanities",
    "stem knowledge",
    "data understanding",
    "optical character recognition",
)
COLUMN_PREFIX = "capability_"
QUESTION = (
    "On a scale of 0 to 5, how do you rate the helpfulness of the VQA instance in training a "
    "Multimodal Large Language Model for {capability}?"
)
RATINGS = tuple(str(n) for n in range(6))
SYSTEM = "You rate visual question-answering samples. Reply with one digit."
PROMPT_FORMAT = 1  # bump when the prompt changes: cached scores stop matching


def snake(capability: str) -> str:
    return capability.replace("-", "_").replace(" ", "_")


def column(capability: str) -> str:
    """The scored table's column for a capability."""
    return COLUMN_PREFIX + snake(capability)


COLUMNS = tuple(column(c) for c in CAPABILITIES)
FEATURES = {name: datasets.Value("float32") for name in COLUMNS}


@dataclass(frozen=True)
class CapabilityConfig:
    """Exactly one of `scores` (mmSSR's output folder) or `model` (a prompted scorer)."""

    scores: Path | None = None
    model: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    batch_size: int = 16  # rows per map batch: speed only, not in the cache key
    checkpoint_rows: int = 512  # rows per cached shard: the unit a killed run resumes from

    def __post_init__(self):
        if (self.scores is None) == (self.model is None):
            raise Align2Error("capabilities: give exactly one of a scores folder or a model")


STYLE_FILE = "style.jsonl"  # mmSSR's styler output beside the scores: styles, comma-separated


def read_score_files(folder: str | Path, ids: list[str], by_position: bool = True):
    """(columns, styles, report) for the validated pool whose row ids are `ids`, in source
    order. `by_position`: whether an integer `idx` may name a row by its position (not when
    validation quarantined rows: positions in the pool and in the source then differ).
    Columns: column name -> float32 scores (NaN: missing). Styles: each row's styles from
    `style.jsonl` when the folder has one (None: not named there). Report per file: scored,
    missing, not_an_integer (scores only), unknown_idx."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Align2Error(f"capability scores: {folder} is not a folder")
    found = [c for c in CAPABILITIES if (folder / f"{snake(c)}.jsonl").is_file()]
    if not found:
        names = ", ".join(f"{snake(c)}.jsonl" for c in CAPABILITIES[:2])
        raise Align2Error(f"capability scores: {folder} holds none of mmSSR's files ({names}, ...)")
    lines = _Lines(ids, by_position)
    columns, report = {}, {}
    for capability in found:
        scores = np.full(len(ids), np.nan, dtype=np.float32)
        not_an_integer = 0
        for row, reply in lines.read(folder / f"{snake(capability)}.jsonl"):
            rating = _rating(reply)
            if rating is None:
                not_an_integer += 1
            else:
                scores[row] = rating
        columns[column(capability)] = scores
        scored = int(np.count_nonzero(~np.isnan(scores)))
        report[capability] = {
            "scored": scored,
            "missing": len(ids) - scored,
            "not_an_integer": not_an_integer,
            "unknown_idx": lines.unknown,
        }
    if all(r["scored"] == 0 for r in report.values()):
        raise Align2Error(
            f"capability scores in {folder} name none of the pool's rows: `idx` must be a row "
            "id (a string) or its position in the source (an integer)"
        )
    styles = None
    if (folder / STYLE_FILE).is_file():
        styles = [None] * len(ids)
        for row, reply in lines.read(folder / STYLE_FILE):
            parts = dict.fromkeys(p.strip() for p in str(reply).split(","))  # ordered, unique
            styles[row] = ", ".join(p for p in parts if p) or None
        named = sum(s is not None for s in styles)
        report["style"] = {
            "scored": named,
            "missing": len(ids) - named,
            "unknown_idx": lines.unknown,
        }
    return columns, styles, report


class _Lines:
    """Reads one mmSSR output file as (row, reply) pairs, counting lines naming no row."""

    def __init__(self, ids: list[str], by_position: bool):
        self.by_id = {row_id: row for row, row_id in enumerate(ids)}
        self.n, self.by_position, self.unknown = len(ids), by_position, 0

    def read(self, path: Path):
        self.unknown, seen = 0, set()
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                idx, reply = _parse_line(line, path, number)
                if idx in seen:
                    raise Align2Error(f"{path}:{number}: idx {idx!r} appears twice")
                seen.add(idx)
                if isinstance(idx, int) and not self.by_position:
                    raise Align2Error(
                        f"{path}:{number}: an integer idx is a position in the source, and "
                        "validation quarantined rows, so positions no longer match: key the "
                        "files by row id"
                    )
                if isinstance(idx, str):
                    row = self.by_id.get(idx)
                else:
                    row = idx if 0 <= idx < self.n else None
                if row is None:
                    self.unknown += 1
                else:
                    yield row, reply


def _parse_line(line: str, path: Path, number: int):
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise Align2Error(f"{path}:{number}: not JSON ({err.msg})") from None
    if not isinstance(record, dict) or "idx" not in record or "pred_response" not in record:
        raise Align2Error(f'{path}:{number}: expected {{"idx": ..., "pred_response": ...}}')
    idx = record["idx"]
    if isinstance(idx, bool) or not isinstance(idx, (str, int)):
        raise Align2Error(f"{path}:{number}: idx must be a string id or an integer position")
    return idx, record["pred_response"]


def _rating(reply) -> int | None:
    """mmSSR's int(reply): an integer, or a string that is one; anything else is missing."""
    if isinstance(reply, bool):
        return None
    if isinstance(reply, int):
        return reply
    if isinstance(reply, float):
        return int(reply) if math.isfinite(reply) and reply.is_integer() else None
    if isinstance(reply, str):
        try:
            return int(reply)
        except ValueError:
            return None
    return None


def sample_text(conversations: list[dict]) -> str:
    """The sample as mmSSR shows it to its scorer: `Question: ...` / `Answer: ...` lines."""
    lines = []
    for turn in conversations:
        text = turn["value"].replace(IMAGE_TOKEN, "").strip()
        if turn["from"] == HUMAN:
            lines.append(f"Question: {text}")
        elif turn["from"] == GPT:
            lines.append(f"Answer: {text}")
    return "\n".join(lines)


def capability_prompts(conversations: list[dict]) -> list[str]:
    """The 14 questions for one sample: the sample first, so all 14 share it as a prefix."""
    sample = sample_text(conversations)
    return [f"{sample}\n\n{QUESTION.format(capability=c)}" for c in CAPABILITIES]


class PromptedScorer:
    """`datasets.map(batched=True)` transform adding the 14 capability columns. A vision-
    language model (mmSSR's scorer is one) sees each row's image; a causal LM the text."""

    def __init__(self, config: CapabilityConfig):
        self.vision = is_vision_model(config.model, config.revision, config.trust_remote_code)
        reader = VisionRatings if self.vision else OptionReader
        self.reader = reader(config.model, config.revision, config.trust_remote_code, RATINGS)

    @property
    def identity(self) -> str:
        """What the scores depend on: the model and the prompt."""
        return Hasher.hash([PROMPT_FORMAT, self.reader.identity, SYSTEM, QUESTION, CAPABILITIES])

    def __call__(self, batch: dict) -> dict:
        values = np.arange(len(RATINGS), dtype=np.float64)
        scores = {name: [] for name in COLUMNS}
        images = batch.get("image") or [None] * len(batch["conversations"])
        for turns, image in zip(batch["conversations"], images, strict=True):
            prompts = capability_prompts(turns)  # one row's 14 prompts
            if self.vision:
                probabilities = self.reader.probabilities(SYSTEM, prompts, image)
            else:  # one shared prefix, encoded once
                probabilities = self.reader.probabilities(SYSTEM, prompts, len(prompts))
            for name, value in zip(COLUMNS, (probabilities @ values).tolist(), strict=True):
                scores[name].append(value)
        return scores


def is_vision_model(name: str, revision: str | None, trust_remote_code: bool) -> bool:
    """Whether a model folder or Hub id is a vision-language model (its config has a vision
    tower); `.gguf` files and the embedded SmolLM2 are text models."""
    from align2.embedded import SMOLLM2

    if name == SMOLLM2 or name.endswith(".gguf"):
        return False
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(
        name, revision=revision, trust_remote_code=trust_remote_code
    )
    return getattr(config, "vision_config", None) is not None


class VisionRatings(OptionReader):
    """An image-text-to-text model read as one of a few options after each prompt, the row's
    image shown with every prompt."""

    def _load(self):
        if self._loaded is None:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            kwargs = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
            processor = AutoProcessor.from_pretrained(self.name, **kwargs)
            model = AutoModelForImageTextToText.from_pretrained(
                self.name, use_safetensors=True, **kwargs
            ).eval()
            self._loaded = model, processor, self.option_ids(processor.tokenizer)
        return self._loaded

    def probabilities(self, system: str, prompts: list[str], image) -> np.ndarray:
        """P(each option) per prompt, renormalised over the options: one forward pass."""
        import torch

        model, processor, option_ids = self._load()
        texts = [vision_chat(processor, f"{system}\n\n{p}", image is not None) for p in prompts]
        images = {"images": [image.convert("RGB")] * len(texts)} if image is not None else {}
        batch = processor(
            text=texts,
            padding=True,
            padding_side="left",
            add_special_tokens=False,
            return_tensors="pt",
            **images,
        ).to(model.device)
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # past the padding
        with torch.inference_mode():
            output = model(**batch, position_ids=positions, logits_to_keep=1)
        logits = output.logits[:, -1].float()
        chosen = torch.log_softmax(logits, dim=-1)[:, option_ids]
        return torch.softmax(chosen, dim=-1).cpu().numpy().astype(np.float64)


def vision_chat(processor, text: str, with_image: bool) -> str:
    """A user turn (the image first, when there is one) in the model's chat template."""
    content = [{"type": "image"}] if with_image else []
    messages = [{"role": "user", "content": [*content, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def capability_identity(config: CapabilityConfig) -> str:
    """What the capability columns depend on besides the rows: the score files' bytes and
    how they are read, or the prompted model and its prompt."""
    if config.scores is None:
        return PromptedScorer(config).identity
    files = sorted(Path(config.scores).glob("*.jsonl"))
    contents = [(f.name, hashlib.sha256(f.read_bytes()).hexdigest()) for f in files]
    return Hasher.hash([contents, inspect.getsource(read_score_files)])


def score_capabilities(
    dataset: datasets.Dataset,
    config: CapabilityConfig,
    cache_dir: str | Path,
    engine: Engine = LOCAL,
) -> datasets.Dataset:
    """The 14 capability columns for `dataset`'s rows from the prompted model, in cached
    shards placed by `engine` (a killed run resumes; an unchanged step loads)."""
    scorer = PromptedScorer(config)
    read = ["conversations", "image"] if scorer.vision and "image" in dataset.column_names else []
    return map_in_shards(
        dataset.select_columns(read or ["conversations"]),
        scorer,
        features=datasets.Features(FEATURES),
        key=scorer.identity,
        cache_dir=cache_dir,
        name="capabilities",
        rows_per_shard=config.checkpoint_rows,
        batch_size=config.batch_size,
        engine=engine,
    )
