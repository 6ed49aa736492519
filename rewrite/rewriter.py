"""LLM-preference alignment: the inner LLM rewrites each kept question and answer in its own
words, guards check the facts, and the same LLM reviews original against rewrite.

Per turn the decision is one of: `accepted` (the rewrite replaces the text), `reviewed_out`
(the LLM preferred its original), `unchanged` (the rewrite was identical), or the name of the
guard that rejected it. Only a rewrite that passed every guard is shown to the review, so the
review can never choose one a guard refused. Rows keep `original_conversations`, so nothing
is lost.

The report measures what the stage is for: the inner LLM's negative log-likelihood per token
of the answers before and after (lower: more its own words), over the accepted turns and
over every kept answer, and, with an answer reward model, its scores of both versions.

Rewriting (with its review) is a row-wise stage: `Rewriter` maps over a shard's rows, the
engine places the shards (`data/shards.py`: cached, a killed run resumes), and the report is
read off the per-turn figures the shards keep (MEASURE_FEATURES), which the released rows
do not carry.
"""

from __future__ import annotations

import inspect
import math
import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import datasets
import numpy as np
from datasets.fingerprint import Hasher
from jinja2 import Environment, PackageLoader, StrictUndefined

from align2.data.schema import GPT, HUMAN, IMAGE_TOKEN
from align2.data.shards import LOCAL, Engine, map_in_shards, with_columns
from align2.models.backbones import model_fingerprint
from align2.models.generation import (
    LLM,
    GenerationCache,
    GenerationConfig,
    answer_nll,
    generate,
    option_probabilities,
)
from align2.models.precision import generation_precision
from align2.rewrite import claims, guards
from align2.rewrite.claims import polarity
from align2.rewrite.guards import ACCEPTED, REWARD_DROP, GuardConfig, check_rewrite

REVIEWED_OUT, UNCHANGED, SKIPPED = "reviewed_out", "unchanged", "skipped"
REWRITE_FEATURES = {
    "original_conversations": datasets.List(
        {"from": datasets.Value("string"), "value": datasets.Value("string")}
    ),
    "rewrite_decisions": datasets.List(datasets.Value("string")),
    "review_probabilities": datasets.List(datasets.List(datasets.Value("float32"))),
    "rewritten": datasets.Value("bool"),
}
# Per turn, what the report is computed from (None where a turn was not measured).
MEASURE_COLUMNS = ("nll_original", "nll_rewrite", "reward_original", "reward_rewrite")
MEASURE_FEATURES = {name: datasets.List(datasets.Value("float32")) for name in MEASURE_COLUMNS} | {
    "rewrite_bf16": datasets.Value("bool"),
    "rewrite_precision": datasets.Value("string"),
}
SHARD_ROWS = 4096  # rows per cached shard of rewrites: the unit a killed run resumes from


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
    # The build's answer reward model: a rewrite it scores more than guards.max_reward_drop
    # below the original is refused (it reads the image, which the rules cannot).
    answer_model: str | None = None
    answer_revision: str | None = None

    @property
    def identity(self) -> str:
        """What the rewrite columns depend on: the settings that change them (the batch size
        does not), the models' weights, the prompts and the guards' and rewriter's code."""
        settings = {**asdict(self), "generation": self.generation.cache_fields()}
        models = [LLM(self.model, self.revision).fingerprint]
        if self.answer_model is not None:
            models.append(model_fingerprint(self.answer_model, self.answer_revision))
        code = [inspect.getsource(module) for module in (sys.modules[__name__], guards, claims)]
        prompts = [PROMPTS.loader.get_source(PROMPTS, name)[0] for name in PROMPTS.list_templates()]
        return Hasher.hash([settings, models, code, prompts])


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


ImagesOf = Callable[[list[int]], list]  # row positions -> their images


def rewrite_conversations(
    conversations: list[list[dict]],
    ids: list[str],
    config: RewriteConfig,
    cache: GenerationCache | None,
    llm: LLM | None = None,
    images_of: ImagesOf | None = None,
) -> dict:
    """The rewrite columns for a list of conversations (REWRITE_FEATURES) and the per-turn
    figures measured on them (MEASURE_FEATURES). `images_of` gives the answer reward model
    its images, read only for the rows it scores."""
    llm = llm or LLM(config.model, config.revision, config.trust_remote_code)
    precision = generation_precision(llm, config.generation.bf16)
    generation = replace(config.generation, bf16=precision.setting)  # decided once
    config = replace(config, generation=generation)
    turns = _turns(conversations, config.rewrite_questions)
    rewrites = _generate_rewrites(llm, turns, config, cache)
    decisions = [
        UNCHANGED
        if rewrite == turn.text
        else check_rewrite(
            turn.text,
            rewrite,
            is_answer=turn.role == GPT,
            question=turn.question,
            config=config.guards,
        )
        for turn, rewrite in zip(turns, rewrites, strict=True)
    ]
    measured: dict[str, dict[int, float]] = {name: {} for name in MEASURE_COLUMNS}
    if config.answer_model is not None:
        rewards = _guard_reward_drop(turns, rewrites, decisions, config, images_of)
        measured["reward_original"], measured["reward_rewrite"] = rewards
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
    measured["nll_original"], measured["nll_rewrite"] = _nll(
        llm, turns, rewrites, decisions, config
    )
    columns = _per_row(conversations, turns, rewrites, decisions, probabilities, measured)
    columns["rewrite_bf16"] = [precision.bf16] * len(conversations)
    columns["rewrite_precision"] = [precision.reason] * len(conversations)
    return columns


def _per_row(conversations, turns, rewrites, decisions, probabilities, measured) -> dict:
    """Per-turn results laid out by conversation: every turn gets a decision (`skipped`
    where it was not sent to the LLM), the accepted rewrites replace their texts."""
    final = [[dict(t) for t in conversation] for conversation in conversations]
    per_row = [[SKIPPED] * len(c) for c in conversations]
    per_row_p: list[list[list[float]]] = [[[] for _ in c] for c in conversations]
    figures = {name: [[None] * len(c) for c in conversations] for name in MEASURE_COLUMNS}
    for i, (turn, rewrite) in enumerate(zip(turns, rewrites, strict=True)):
        if decisions[i] == ACCEPTED:
            final[turn.row][turn.index]["value"] = _with_image(rewrite, turn.image_first)
        per_row[turn.row][turn.index] = decisions[i]
        per_row_p[turn.row][turn.index] = probabilities[i]
        for name, values in measured.items():
            figures[name][turn.row][turn.index] = values.get(i)
    return {
        "conversations": final,
        "original_conversations": conversations,
        "rewrite_decisions": per_row,
        "review_probabilities": per_row_p,
        "rewritten": [ACCEPTED in d for d in per_row],
        **figures,
    }


def _generate_rewrites(llm: LLM, turns: list[_Turn], config: RewriteConfig, cache) -> list[str]:
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
    roles = [t.role for t in turns]  # one template per role: batched apart
    generated = generate(llm, prompts, config.generation, cache, budgets, roles)
    return [_clean(s + _continue(g) if s else g) for s, g in zip(starts, generated, strict=True)]


def _guard_reward_drop(turns, rewrites, decisions, config: RewriteConfig, images_of):
    """Score the answers that passed the rules, original and rewrite, with the answer reward
    model; refuse (in `decisions`) those it scores more than `max_reward_drop` lower. The
    scores, by turn: (originals, rewrites)."""
    from align2.models.backbones import load_reward_model
    from align2.models.scoring import score_texts
    from align2.reward.templates import answer_text

    scored = [i for i, d in enumerate(decisions) if d == ACCEPTED and turns[i].role == GPT]
    if not scored:
        return {}, {}
    backbone = load_reward_model(
        config.answer_model,
        revision=config.answer_revision,
        trust_remote_code=config.trust_remote_code,
    )
    images = None
    if backbone.sees_images:
        if images_of is None:
            raise ValueError(f"answer model {config.answer_model} reads images: pass images_of")
        rows = sorted({turns[i].row for i in scored})
        by_row = dict(zip(rows, images_of(rows), strict=True))
        images = [by_row[turns[i].row] for i in scored] * 2
    texts = [answer_text(turns[i].question, turns[i].text) for i in scored]
    texts += [answer_text(turns[i].question, rewrites[i]) for i in scored]
    scores = score_texts(backbone, texts, images, batch_size=config.generation.batch_size)
    before, after = scores[: len(scored)], scores[len(scored) :]
    for i, drop in zip(scored, before - after, strict=True):
        if drop > config.guards.max_reward_drop:
            decisions[i] = REWARD_DROP
    return dict(zip(scored, before.tolist(), strict=True)), dict(
        zip(scored, after.tolist(), strict=True)
    )


def _nll(llm: LLM, turns, rewrites, decisions, config: RewriteConfig):
    """The inner LLM's mean NLL per token of every answer turn's original, and of each
    accepted answer's rewrite, by turn."""
    answers = [i for i, t in enumerate(turns) if t.role == GPT]
    accepted = [i for i in answers if decisions[i] == ACCEPTED]
    questions = [turns[i].question for i in answers] + [turns[i].question for i in accepted]
    texts = [turns[i].text for i in answers] + [rewrites[i] for i in accepted]
    nll = answer_nll(llm, questions, texts, config.generation.batch_size) if texts else []
    nll = [float(x) for x in nll]
    original = dict(zip(answers, nll[: len(answers)], strict=True))
    return original, dict(zip(accepted, nll[len(answers) :], strict=True))


def measured_report(rows: dict, config: RewriteConfig) -> dict:
    """What was measured, from the rewritten rows' per-turn figures: the precision, the
    inner LLM's NLL over the accepted answer turns (original and rewrite) and over every
    answer turn (original and as released), and the answer reward model's scores."""
    original, rewrite, released, every = [], [], [], []
    reward = {"original": [], "rewrite": [], "refused": 0}
    for row in range(len(rows["rewrite_decisions"])):
        figures = (rows[name][row] for name in MEASURE_COLUMNS)
        turns = zip(rows["rewrite_decisions"][row], *figures, strict=True)
        for decision, nll, nll_rewrite, reward_original, reward_rewrite in turns:
            if nll is not None:
                every.append(nll)
                released.append(nll_rewrite if decision == ACCEPTED else nll)
            if decision == ACCEPTED and nll_rewrite is not None:
                original.append(nll)
                rewrite.append(nll_rewrite)
            if reward_original is not None:
                reward["original"].append(reward_original)
                reward["rewrite"].append(reward_rewrite)
                reward["refused"] += decision == REWARD_DROP
    precisions = sorted(set(zip(rows["rewrite_bf16"], rows["rewrite_precision"], strict=True)))
    report = {
        "precision": [{"bf16": bf16, "reason": reason} for bf16, reason in precisions],
        "inner_llm_nll": {
            "turns": len(original),
            "original": _mean(original),
            "rewritten": _mean(rewrite),
            "all_answers": {
                "turns": len(every),
                "original": _mean(every),
                "released": _mean(released),
            },
        },
    }
    if len(precisions) == 1:  # one machine decided for every shard
        report["precision"] = report["precision"][0]
    if config.answer_model is not None:
        report["answer_reward"] = {"model": config.answer_model, "scored": len(reward["original"])}
        if reward["original"]:
            report["answer_reward"] |= {
                "refused": reward["refused"],
                "max_drop": config.guards.max_reward_drop,
                "mean_original": _mean(reward["original"]),
                "mean_rewrite": _mean(reward["rewrite"]),
            }
    return report


def _mean(values) -> float | None:
    return round(float(np.mean(np.asarray(values, np.float32))), 4) if len(values) else None


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


class Rewriter:
    """`datasets.map(batched=True)` transform: a batch's rows rewritten, reviewed and
    measured. It pickles as its settings (the LLM loads in the process that maps), so an
    engine can place it anywhere; `cache_path` is its generation cache (SQLite), if any."""

    def __init__(self, config: RewriteConfig, cache_path: str | None):
        self.config, self.cache_path = config, cache_path
        self._llm: LLM | None = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_llm"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _llm=None)

    def __call__(self, batch: dict) -> dict:
        config = self.config
        self._llm = self._llm or LLM(config.model, config.revision, config.trust_remote_code)
        cache = GenerationCache(self.cache_path) if self.cache_path else None
        images = batch.get("image")

        def images_of(rows: list[int]) -> list:
            return [IMAGE.decode_example(images[row]) for row in rows]

        images_of = images_of if images is not None else None
        return rewrite_conversations(
            batch["conversations"], batch["id"], config, cache, self._llm, images_of
        )


IMAGE = datasets.Image()  # rows reach the rewriter undecoded: only scored ones are read


def rewrite_dataset(
    dataset: datasets.Dataset,
    config: RewriteConfig,
    cache_dir: str | Path | None,
    engine: Engine = LOCAL,
) -> tuple[datasets.Dataset, dict]:
    """`dataset` with rewritten conversations and the audit columns, and the report. The
    rewrites are computed in cached shards under `cache_dir` (with the generation cache),
    placed by `engine`; None: a temporary folder, nothing kept."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(cache_dir) if cache_dir is not None else Path(scratch)
        columns = ["id", "conversations", *(["image"] if "image" in dataset.features else [])]
        rows = dataset.select_columns(columns)
        if "image" in columns:
            rows = rows.cast_column("image", datasets.Image(decode=False))
        cache = str(folder / CACHE_FILE) if cache_dir is not None else None
        features = {"conversations": dataset.features["conversations"], **REWRITE_FEATURES}
        added = map_in_shards(
            rows,
            Rewriter(config, cache),
            features=datasets.Features({**features, **MEASURE_FEATURES}),
            key=config.identity,
            cache_dir=folder,
            name="rewrites",
            rows_per_shard=SHARD_ROWS,
            batch_size=SHARD_ROWS,  # one call per shard: its prompts batched by length together
            engine=engine,
        )
        measured = added.select_columns(["rewrite_decisions", *MEASURE_FEATURES]).to_dict()
        added = added.remove_columns(list(MEASURE_FEATURES))
        out = with_columns(dataset, added, folder)
        if cache_dir is None:  # the scratch folder goes: the rows must not live in it
            out = out.flatten_indices(keep_in_memory=True)
    report = {**rewrite_report(measured["rewrite_decisions"]), **measured_report(measured, config)}
    return out, report


CACHE_FILE = "generation_cache.sqlite"


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
