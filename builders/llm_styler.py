"""An LLM styler: mmSSR's interaction style per sample, asked of any causal LM.

The alternative to the training-free rules (`styler.py`). The model sees the style list,
numbered, then the sample's first question and answer (the turn that carries the image, as
the rules judge it), and the style is the number it finds likeliest as its reply's first
token: one forward pass per row, no generation, so every label is one of the nine and the
same model gives the same labels. The list comes first, so every prompt shares it as a
prefix.

There is no embedded default: SmolLM2-135M is too small for the task (it replied "1" for
every one of 200 demo-pool rows). Pass an instruction-tuned model that can.

The transform pickles without its loaded model, and `identity` (the model's name, revision
and weight fingerprint, and the prompt) keys its `datasets` cache: an unchanged step loads
from cache, and the batch size, which changes only the speed, is not in the key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from datasets.fingerprint import Hasher

from align2.builders.styler import STYLES
from align2.data.schema import GPT, HUMAN, IMAGE_TOKEN
from align2.models.generation import OptionReader

# What each style means, as the prompt tells the model (mmSSR's names, in STYLES' order).
STYLE_MEANINGS = {
    "multi-choice": "the question offers options to choose from",
    "coordinate": "the answer gives positions or a bounding box as numbers",
    "yes/no": "the answer is yes or no",
    "word/short-phrase": "the answer is one word or a short phrase",
    "short description": "the answer describes the image in a sentence or two",
    "detailed description": "the answer describes the image at length, in detail",
    "comparison": "the question asks to compare things",
    "chain-of-thought": "the answer reasons step by step to its conclusion",
    "specified style": "the question asks for a particular format or style of answer",
}
LABELS = tuple(str(n) for n in range(1, len(STYLES) + 1))
SYSTEM = "You label samples of a visual question-answering dataset. Reply with a number only."
ANSWER_WORDS = 200  # longer answers are cut (their word count is still given)


@dataclass(frozen=True)
class LLMStylerConfig:
    model: str  # a causal LM: Hub id, local folder or .gguf file
    revision: str | None = None
    trust_remote_code: bool = False
    batch_size: int = 8  # prompts per forward pass: speed only, not in the cache key


def style_prompt(conversations: list[dict]) -> str:
    """The question put to the model for one conversation."""
    question = next((t["value"] for t in conversations if t["from"] == HUMAN), "")
    answer = next((t["value"] for t in conversations if t["from"] == GPT), "")
    words = answer.split()
    shown = " ".join(words[:ANSWER_WORDS]) + (" ..." if len(words) > ANSWER_WORDS else "")
    styles = "\n".join(
        f"{label}. {style}: {STYLE_MEANINGS[style]}"
        for label, style in zip(LABELS, STYLES, strict=True)
    )
    return (
        f"Interaction styles:\n{styles}\n\n"
        f"Question: {question.replace(IMAGE_TOKEN, '').strip()}\n"
        f"Answer ({len(words)} words): {shown}\n\n"
        "Which interaction style is this question and answer? Reply with its number."
    )


class LLMStyler:
    """`datasets.map(batched=True)` transform: adds a `style` column."""

    def __init__(self, config: LLMStylerConfig):
        self.config = config
        self.reader = OptionReader(config.model, config.revision, config.trust_remote_code, LABELS)

    @property
    def identity(self) -> str:
        """What the labels depend on: the model and the prompt."""
        return Hasher.hash([self.reader.identity, SYSTEM, style_prompt([])])  # names every style

    def __call__(self, batch: dict) -> dict:
        prompts = [style_prompt(turns) for turns in batch["conversations"]]
        order = np.argsort([len(p) for p in prompts], kind="stable")  # less padding per batch
        probabilities = self.reader.probabilities(
            SYSTEM, [prompts[i] for i in order], self.config.batch_size
        )
        styles = [""] * len(prompts)
        for row, best in zip(order, probabilities.argmax(axis=1), strict=True):
            styles[row] = STYLES[best]
        return {"style": styles}
