"""What `align2 annotate prepare` puts before annotators beyond the seed's corruptions:
variants written by a generator LLM, and the choice of rows the current reward model is
least sure about (active learning: a score there teaches it most).

Variants are sampled at several temperatures, one per temperature: questions another person
might ask of the same image, answers in the generator's own words (it reads the original
answer, not the image, so its answers may get facts wrong: that is for annotators to score).
"""

from __future__ import annotations

import io
import itertools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from align2.errors import Align2Error
from align2.reward.annotations import CORRUPTIONS
from align2.reward.templates import ANSWER, QUESTION, render

QUESTION_PROMPT = (
    "Here is a question someone asked about an image:\n{question}\n\n"
    "Write one different question a person might ask about the same image. "
    "Reply with the question only."
)
ANSWER_PROMPT = (
    "A question about an image: {question}\nA reference answer: {answer}\n\n"
    "Answer the question yourself, in your own words. Reply with the answer only."
)
SYSTEM = "You write questions and answers about images for a dataset."


@dataclass(frozen=True)
class GeneratorConfig:
    """A causal LM that writes candidate variants (a Hub id, a folder, a .gguf or smollm2)."""

    model: str
    revision: str | None = None
    temperatures: tuple[float, ...] = (0.7, 1.0, 1.3)  # one variant each
    max_new_tokens: int = 64
    seed: int = 0
    trust_remote_code: bool = False


def generated_variants(
    firsts: Sequence[tuple[str, str]], config: GeneratorConfig
) -> list[dict[str, list[tuple[str, str]]]]:
    """Per (question, answer): {kind: [(text, origin), ...]}, one sampled variant per
    temperature and kind, empty replies and repeats of the original left out."""
    from align2.models.generation import LLM, GenerationConfig, generate

    llm = LLM(config.model, config.revision, config.trust_remote_code)
    prompts = {
        QUESTION: [llm.chat(SYSTEM, QUESTION_PROMPT.format(question=q)) for q, _ in firsts],
        ANSWER: [llm.chat(SYSTEM, ANSWER_PROMPT.format(question=q, answer=a)) for q, a in firsts],
    }
    variants = [{QUESTION: [], ANSWER: []} for _ in firsts]
    for kind, temperature in itertools.product((QUESTION, ANSWER), config.temperatures):
        sampling = GenerationConfig(
            max_new_tokens=config.max_new_tokens,
            do_sample=True,
            temperature=temperature,
            seed=config.seed,
        )
        texts = generate(llm, prompts[kind], sampling, cache=None)
        for row, text in enumerate(texts):
            text = _cleaned(text, kind)
            original = firsts[row][0 if kind == QUESTION else 1]
            seen = [t for t, _ in variants[row][kind]]
            if text and text != original and text not in seen:
                variants[row][kind].append((text, f"generated:t={temperature:g}"))
    return variants


def _cleaned(text: str, kind: str) -> str:
    text = text.strip().strip('"').strip()
    return text.splitlines()[0].strip() if kind == QUESTION and text else text


def least_sure_rows(
    firsts: Sequence[tuple[str, str]],
    images: Sequence[bytes],
    model: str | Path,
    size: int,
    *,
    candidates: int,
    seed: int,
) -> list[int]:
    """The `size` rows the reward model at `model` is least sure of (`sureness`), in input
    order; ties by position."""
    scores = sureness(firsts, images, model, candidates=candidates, seed=seed)
    return sorted(np.argsort(scores, kind="stable")[:size].tolist())


def sureness(
    firsts: Sequence[tuple[str, str]],
    images: Sequence[bytes],
    model: str | Path,
    *,
    candidates: int,
    seed: int,
) -> np.ndarray:
    """Per (question, answer), how surely the reward model orders the row's candidates of
    its kind (the original and the seed's corruptions): the mean |P(i > j) - 0.5| over
    candidate pairs, P from the score gap (Bradley-Terry); inf where there is one candidate.
    Each row's corruptions are seeded by the row's own text, so a row scores the same alone
    or in a pool."""
    from PIL import Image

    from align2.models.backbones import load_reward_model
    from align2.models.scoring import score_texts
    from align2.reward.train import METADATA_FILE

    metadata = Path(model) / METADATA_FILE
    if not metadata.is_file():
        raise Align2Error(f"{model} is not an align2 reward model (no {METADATA_FILE})")
    kind = json.loads(metadata.read_text(encoding="utf-8"))["kind"]
    methods = sorted(m for m in CORRUPTIONS if kind == QUESTION or m != "duplicate")
    texts, owners = [], []
    for row, (question, answer) in enumerate(firsts):
        original = question if kind == QUESTION else answer
        rng = random.Random(f"{seed}\n{original}")
        variants = {original}
        for method in itertools.islice(itertools.cycle(methods), 4 * candidates):
            if len(variants) == candidates:
                break
            variants.add(CORRUPTIONS[method](original, rng) or original)
        for text in sorted(variants):
            texts.append(render(kind, question if kind == ANSWER else "", text))
            owners.append(row)
    backbone = load_reward_model(model)
    pictures = [Image.open(io.BytesIO(images[row])).convert("RGB") for row in owners]
    scores = score_texts(backbone, texts, pictures if backbone.sees_images else None)
    result = np.full(len(firsts), np.inf)
    owners = np.asarray(owners)
    for row in range(len(firsts)):
        mine = scores[owners == row]
        if len(mine) > 1:
            gaps = np.array([a - b for a, b in itertools.combinations(mine, 2)])
            result[row] = np.mean(np.abs(1 / (1 + np.exp(-gaps)) - 0.5))
    return result
