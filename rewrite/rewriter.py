"""LLM-preference alignment: the inner LLM rewrites each kept question and answer in its own
words, guards check the facts, and the same LLM reviews original against rewrite.

Per turn the decision is one of: `accepted` (the rewrite replaces the text), `reviewed_out`
(the LLM preferred its original), `unchanged` (the rewrite was identical), or the name of the
guard that rejected it. Rows keep `original_conversations`, so nothing is lost.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from align2.builders.schema import GPT, HUMAN, IMAGE_TOKEN
from align2.rewrite.generation import (
    LLM,
    GenerationCache,
    GenerationConfig,
    generate,
    option_probabilities,
)
from align2.rewrite.guards import ACCEPTED, GuardConfig, check_rewrite, polarity

REVIEWED_OUT, UNCHANGED, SKIPPED = "reviewed_out", "unchanged", "skipped"
REWRITE_FEATURES = {
    "original_conversations": datasets.List(
        {"from": datasets.Value("string"), "value": datasets.Value("string")}
    ),
    "rewrite_decisions": datasets.List(datasets.Value("string")),
    "review_probabilities": datasets.List(datasets.List(datasets.Value("float32"))),
    "rewritten": datasets.Value("bool"),
}


@dataclass(frozen=True)
class RewriteConfig:
    model: str = "smollm2"  # the target model's inner LLM: Hub id, folder, .gguf or smollm2
    revision: str | None = None
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    guards: GuardConfig = field(default_factory=GuardConfig)
    rewrite_questions: bool = True
    review: bool = True  # the LLM chooses between original and rewrite
    seed: int = 0  # the order the two options are shown in, per turn
    trust_remote_code: bool = False


# Prompts are files (rewrite/prompts/*.j2). Plain text goes to a model: no HTML escaping.
PROMPTS = Environment(
    loader=PackageLoader("align2.rewrite", "prompts"),
    undefined=StrictUndefined,
    autoescape=False,
)


def render(name: str, **values) -> str:
    return PROMPTS.get_template(name).render(**values).strip()


@dataclass
class _Turn:
    row: int
    index: int  # position in the conversation
    role: str
    text: str  # without the <image> token
    question: str  # the human turn this answer replies to ("" for questions)
    image_first: bool | None  # where <image> sat in this turn (None: not in this turn)


def _turns(conversations: list[list[dict]], questions: bool) -> list[_Turn]:
    turns = []
    for row, conversation in enumerate(conversations):
        question = ""
        for index, turn in enumerate(conversation):
            value = turn["value"]
            image_first = None
            if IMAGE_TOKEN in value:
                image_first = value.strip().startswith(IMAGE_TOKEN)
            text = value.replace(IMAGE_TOKEN, "").strip()
            if turn["from"] == HUMAN:
                question = text
                if questions:
                    turns.append(_Turn(row, index, HUMAN, text, "", image_first))
            elif turn["from"] == GPT:
                turns.append(_Turn(row, index, GPT, text, question, image_first))
    return turns


def _with_image(text: str, image_first: bool | None) -> str:
    if image_first is None:
        return text
    return f"{IMAGE_TOKEN}\n{text}" if image_first else f"{text}\n{IMAGE_TOKEN}"


def rewrite_conversations(
    conversations: list[list[dict]],
    ids: list[str],
    config: RewriteConfig,
    cache: GenerationCache | None,
    llm: LLM | None = None,
) -> dict:
    """The rewrite columns for a list of conversations (see REWRITE_FEATURES)."""
    llm = llm or LLM(config.model, config.revision, config.trust_remote_code)
    turns = _turns(conversations, config.rewrite_questions)
    system = render("system.j2")
    prompts = [
        llm.chat(
            system,
            render("rewrite_answer.j2", question=t.question, answer=t.text)
            if t.role == GPT
            else render("rewrite_question.j2", question=t.text),
        )
        for t in turns
    ]
    # A yes/no answer's reply is started for the model ("No,"): a 135M model drops the
    # polarity word otherwise, and the polarity guard would reject almost every rewrite.
    starts = [_start(t) for t in turns]
    prompts = [p + s for p, s in zip(prompts, starts, strict=True)]
    budgets = [token_budget(t.text, config.guards) for t in turns]
    generated = generate(llm, prompts, config.generation, cache, budgets)
    rewrites = [
        _clean(s + _continue(g) if s else g) for s, g in zip(starts, generated, strict=True)
    ]
    decisions = [
        UNCHANGED
        if rewrite == turn.text
        else check_rewrite(turn.text, rewrite, is_answer=turn.role == GPT, config=config.guards)
        for turn, rewrite in zip(turns, rewrites, strict=True)
    ]
    probabilities = [[] for _ in turns]
    reviewed = [i for i, d in enumerate(decisions) if d == ACCEPTED]
    if config.review and reviewed:
        p_rewrite, p_original = _review(
            llm, [turns[i] for i in reviewed], [rewrites[i] for i in reviewed], ids, config
        )
        for i, pr, po in zip(reviewed, p_rewrite, p_original, strict=True):
            probabilities[i] = [float(po), float(pr)]
            if pr <= po:
                decisions[i] = REVIEWED_OUT
    final = [[dict(t) for t in conversation] for conversation in conversations]
    # One decision per turn of the conversation; turns not sent to the LLM are `skipped`.
    per_row = [[SKIPPED] * len(c) for c in conversations]
    per_row_p: list[list[list[float]]] = [[[] for _ in c] for c in conversations]
    for turn, rewrite, decision, p in zip(turns, rewrites, decisions, probabilities, strict=True):
        if decision == ACCEPTED:
            final[turn.row][turn.index]["value"] = _with_image(rewrite, turn.image_first)
        per_row[turn.row][turn.index] = decision
        per_row_p[turn.row][turn.index] = p
    return {
        "conversations": final,
        "original_conversations": conversations,
        "rewrite_decisions": per_row,
        "review_probabilities": per_row_p,
        "rewritten": [ACCEPTED in d for d in per_row],
    }


TOKENS_PER_WORD = 1.6  # generous for English with SmolLM2's tokenizer (~1.3 measured)


def token_budget(text: str, guards: GuardConfig) -> int:
    """New tokens worth generating: the length guard rejects any rewrite longer than this."""
    words = guards.max_length_ratio * len(text.split()) + guards.length_slack_words
    return math.ceil(TOKENS_PER_WORD * words) + 4


def _start(turn: _Turn) -> str:
    said = polarity(turn.text) if turn.role == GPT else None
    return f"{said.capitalize()}, " if said else ""


def _continue(text: str) -> str:
    """A generated continuation after "No, ": lower-case its first word unless it is "I"."""
    text = text.lstrip(" ,.")
    if text[:1].isupper() and not text.startswith(("I ", "I'")):
        text = text[0].lower() + text[1:]
    return text


def _clean(text: str) -> str:
    """The model's reply without quotes or a leading label it may add."""
    text = text.replace(IMAGE_TOKEN, "").strip()
    for label in ("Rewritten question:", "Rewritten answer:", "Question:", "Answer:"):
        if text.startswith(label):
            text = text[len(label) :].strip()
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def _review(llm: LLM, turns, rewrites, ids, config: RewriteConfig):
    """P(rewrite), P(original) per turn. Which one is shown as A is drawn per turn from the
    seed and the row id, cancelling the model's position bias over the dataset."""
    prompts, rewrite_first = [], []
    for turn, rewrite in zip(turns, rewrites, strict=True):
        first = random.Random(f"{config.seed}:{ids[turn.row]}:{turn.index}").random() < 0.5
        a, b = (rewrite, turn.text) if first else (turn.text, rewrite)
        role = "answer" if turn.role == GPT else "question"
        user = render("review.j2", role=role, question=turn.question, option_a=a, option_b=b)
        prompts.append(llm.chat(render("system.j2"), user))
        rewrite_first.append(first)
    p = option_probabilities(llm, prompts, ("A", "B"), config.generation.batch_size)
    first = np.asarray(rewrite_first)
    p_rewrite = np.where(first, p[:, 0], p[:, 1])
    return p_rewrite, 1 - p_rewrite


def rewrite_dataset(
    dataset: datasets.Dataset, config: RewriteConfig, cache_path: str | Path | None
) -> datasets.Dataset:
    """`dataset` with rewritten conversations and the audit columns."""
    cache = GenerationCache(cache_path) if cache_path is not None else None
    columns = rewrite_conversations(dataset["conversations"], dataset["id"], config, cache)
    out = dataset.remove_columns("conversations").add_column(
        "conversations", columns.pop("conversations"), feature=dataset.features["conversations"]
    )
    for name, values in columns.items():
        out = out.add_column(name, values, feature=REWRITE_FEATURES[name])
    order = list(dataset.column_names) + list(REWRITE_FEATURES)
    return out.select_columns(order)


def rewrite_report(decisions: list[list[str]]) -> dict:
    """Shares of the turns sent to the LLM that were rewritten, reviewed out, guarded out (per
    guard) and unchanged; `skipped` counts the turns not sent (questions, when off)."""
    every = [d for row in decisions for d in row]
    flat = [d for d in every if d != SKIPPED]
    n = max(1, len(flat))
    guarded: dict[str, int] = {}
    for d in flat:
        if d not in (ACCEPTED, REVIEWED_OUT, UNCHANGED, SKIPPED):
            guarded[d] = guarded.get(d, 0) + 1
    return {
        "turns": len(flat),
        "skipped": len(every) - len(flat),
        "rows": len(decisions),
        "rows_rewritten": sum(ACCEPTED in row for row in decisions),
        "rewritten": round(flat.count(ACCEPTED) / n, 4),
        "reviewed_out": round(flat.count(REVIEWED_OUT) / n, 4),
        "guarded_out": round(sum(guarded.values()) / n, 4),
        "unchanged": round(flat.count(UNCHANGED) / n, 4),
        "guards": dict(sorted(guarded.items())),
    }
