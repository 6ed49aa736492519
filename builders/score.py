"""Scoring with `datasets.map`: the question model f scores each conversation's human turns
together; the answer model g scores every (question, answer) turn. Where a turn carries
several candidate answers (a `candidates` column), the best-scoring one replaces the answer
and its index is recorded.

Columns added: `question_score`, `answer_scores` (per turn), `answer_score` (their mean),
`answer_choice` (per turn, the candidate kept; 0 when there was one answer) and
`truncated_tokens` (tokens cut from the row's texts to fit a model's context; 0 for most).

The transform is a picklable object whose state is the models' identity (path, revision,
weight fingerprint) and the options, never a loaded model: `datasets` fingerprints it, so an
unchanged step loads from its cache. Rows are scored in shards of `checkpoint_rows`, each
its own cache file (`data/shards.py`): a killed run resumes at the first unfinished shard,
on either engine, and the result is identical to an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from datasets.fingerprint import Hasher

from align2.data.schema import FEATURES, GPT, HUMAN
from align2.data.shards import LOCAL, Engine, map_in_shards, with_columns
from align2.models.backbones import Backbone, load_reward_model, model_fingerprint
from align2.models.scoring import score_texts, use_bf16
from align2.reward.templates import answer_text, question_text

SCORES_FORMAT = 3  # bump when what a shard holds changes: old cache files stop matching
SCORE_FEATURES = {
    "question_score": datasets.Value("float32"),
    "answer_scores": datasets.List(datasets.Value("float32")),
    "answer_score": datasets.Value("float32"),
    "answer_choice": datasets.List(datasets.Value("int32")),
    "truncated_tokens": datasets.Value("int32"),
}


@dataclass(frozen=True)
class ScoringConfig:
    question_model: str  # a reward model folder or Hub id
    answer_model: str
    question_revision: str | None = None
    answer_revision: str | None = None
    batch_size: int = 64  # sequences per forward pass
    window: int = 1024  # rows per map batch; texts are length-sorted within it
    sort_by_length: bool = True
    bf16: str = "auto"  # "auto": bfloat16 autocast on GPUs that have it; "on" / "off"
    checkpoint_rows: int = 4096  # rows per cached shard: the unit a killed run resumes from
    trust_remote_code: bool = False


class _LazyModel:
    """A reward model that loads on first use; pickles as its identity only."""

    def __init__(self, path: str, revision: str | None, trust_remote_code: bool):
        self.path, self.revision, self.trust_remote_code = str(path), revision, trust_remote_code
        self.fingerprint = model_fingerprint(path, revision)
        self._backbone: Backbone | None = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_backbone"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _backbone=None)

    def get(self, rank: int | None) -> Backbone:
        if self._backbone is None:
            self._backbone = load_reward_model(
                self.path, revision=self.revision, trust_remote_code=self.trust_remote_code
            )
            if torch.cuda.is_available():
                self._backbone.model.to(f"cuda:{(rank or 0) % torch.cuda.device_count()}")
        return self._backbone


class ConversationScorer:
    """`datasets.map(batched=True, with_rank=True)` transform adding the score columns."""

    def __init__(self, config: ScoringConfig):
        self.question = _LazyModel(
            config.question_model, config.question_revision, config.trust_remote_code
        )
        self.answer = _LazyModel(
            config.answer_model, config.answer_revision, config.trust_remote_code
        )
        self.options = {
            "batch_size": config.batch_size,
            "sort_by_length": config.sort_by_length,
            "bf16": use_bf16(config.bf16),
        }

    def __call__(self, batch: dict, rank: int | None = None) -> dict:
        conversations = batch["conversations"]
        images = batch["image"] if "image" in batch else [None] * len(conversations)  # text pools
        human = [[t["value"] for t in turns if t["from"] == HUMAN] for turns in conversations]
        question_scores, truncated = score_texts(
            self.question.get(rank),
            [question_text(q) for q in human],
            images,
            return_cut=True,
            **self.options,
        )
        candidates = batch.get("candidates") or [[] for _ in images]
        texts, text_images, owners = [], [], []  # owners: (row, turn, candidate)
        for row, (turns, alternatives) in enumerate(zip(conversations, candidates, strict=True)):
            answers = [t["value"] for t in turns if t["from"] == GPT]
            for turn, (question, answer) in enumerate(zip(human[row], answers, strict=True)):
                options = alternatives[turn] if turn < len(alternatives) else []
                for choice, option in enumerate(options or [answer]):
                    texts.append(answer_text(question, option))
                    text_images.append(images[row])
                    owners.append((row, turn, choice))
        flat, cut = score_texts(
            self.answer.get(rank), texts, text_images, return_cut=True, **self.options
        )
        np.add.at(truncated, [row for row, _, _ in owners], cut)
        best: dict[tuple[int, int], tuple[float, int]] = {}
        for (row, turn, choice), score in zip(owners, flat.tolist(), strict=True):
            if (row, turn) not in best or score > best[(row, turn)][0]:
                best[(row, turn)] = (score, choice)
        answer_scores, answer_choice, chosen = [], [], []
        for row, turns in enumerate(conversations):
            n_turns = len(human[row])
            picks = [best[(row, turn)] for turn in range(n_turns)]
            answer_scores.append([score for score, _ in picks])
            answer_choice.append([choice for _, choice in picks])
            chosen.append(_with_answers(turns, candidates[row], answer_choice[-1]))
        scores = {
            "question_score": question_scores.tolist(),
            "answer_scores": answer_scores,
            "answer_score": [float(np.mean(s)) for s in answer_scores],
            "answer_choice": answer_choice,
            "truncated_tokens": truncated.tolist(),
        }
        return {**scores, "conversations": chosen} if "candidates" in batch else scores


def _with_answers(turns: list[dict], alternatives: list[list[str]], choice: list[int]):
    """The conversation with each turn's chosen candidate as its answer."""
    if not alternatives:
        return turns
    out, gpt_turn = [], 0
    for turn in turns:
        if turn["from"] == GPT:
            options = alternatives[gpt_turn] if gpt_turn < len(alternatives) else []
            if options:
                turn = {**turn, "value": options[choice[gpt_turn]]}
            gpt_turn += 1
        out.append(turn)
    return out


def scoring_identity(config: ScoringConfig) -> list:
    """What scores depend on besides the rows: the two models' weights (and remote code)."""
    return [
        model_fingerprint(config.question_model, config.question_revision),
        model_fingerprint(config.answer_model, config.answer_revision),
        config.trust_remote_code,
    ]


def score_dataset(
    dataset: datasets.Dataset,
    config: ScoringConfig,
    cache_dir: str | Path,
    engine: Engine = LOCAL,
) -> datasets.Dataset:
    """`dataset` with the score columns, computed shard by shard into `cache_dir` by
    `engine`."""
    if not len(dataset):
        every = datasets.Features({**dataset.features, **SCORE_FEATURES})
        return datasets.Dataset.from_dict({name: [] for name in every}, features=every)
    scorer = ConversationScorer(config)
    # Batch size and the like change how fast, not what: they stay out of the cache key.
    key = Hasher.hash(
        [
            SCORES_FORMAT,
            scorer.question.fingerprint,
            scorer.answer.fingerprint,
            config.trust_remote_code,
        ]
    )
    replaces_answers = "candidates" in dataset.column_names
    features = datasets.Features(
        {
            **SCORE_FEATURES,
            **({"conversations": FEATURES["conversations"]} if replaces_answers else {}),
        }
    )
    scores = map_in_shards(
        dataset,
        scorer,
        features=features,
        key=key,
        cache_dir=cache_dir,
        name="scores",
        rows_per_shard=config.checkpoint_rows,
        batch_size=config.window,
        engine=engine,
        with_rank=True,
    )
    return with_columns(dataset, scores, cache_dir)
