"""easy-VQA's test split as a downstream benchmark for a generative VLM.

Two reads of a model, both on images it never saw in training (the test split's 1,000):
- accuracy: the answer it ranks highest among easy-VQA's 13 answers, by the teacher-forced
  likelihood of the whole answer word (a word may take several tokens) in the place where
  its own reply gives its answer (`accuracy`);
- defects: its greedy answers to a sample of the questions, each read for what dirty
  training data teaches: a refusal, markup, an off-topic reply, an answer cut off, or one
  that contradicts the image (the rewrite truth report's reader, `rewrite.truth.judge`).
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from align2.rewrite.claims import polarity
from align2.rewrite.truth import judge

DEFECT_KINDS = ("cut_off", "refusal", "markup", "off_topic", "contradicts_image")
_REFUSAL = re.compile(r"\bas an ai\b|\bi(?:'m| am) sorry\b|\bi can(?:'|no)t\b|\bunable to\b", re.I)
_MARKUP = re.compile(r"[<>{}\[\]`#]|&\w+;|\|")


@dataclass(frozen=True)
class Question:
    image: str  # path
    text: str
    answer: str
    facts: frozenset[str]  # the image's colour and shape


@functools.cache
def test_questions() -> tuple[Question, ...]:
    """easy-VQA's 9,673 test questions, asked as the demo pool asks (first letter capital).
    Read once per process: every run of a comparison is read on them."""
    from align2.demo.pool import easy_vqa_split, image_facts
    from align2.rewrite.claims import term

    questions, paths = easy_vqa_split("test")
    out = []
    for image_id in sorted(questions):
        qas = questions[image_id]
        facts = image_facts(qas, paths[image_id])
        seen = frozenset(term(v) for v in facts.values() if v)
        out += [Question(paths[image_id], q[0].upper() + q[1:], a, seen) for q, a in qas]
    return tuple(out)


def answers() -> tuple[str, ...]:
    import easy_vqa

    return tuple(easy_vqa.get_answers())


def sample(questions, n: int | None, seed: int = 0) -> list[Question]:
    if n is None or n >= len(questions):
        return list(questions)
    return random.Random(seed).sample(questions, n)


def _prompts(processor, batch: list[Question], replies: list[str] | None = None):
    """The chat prompts of `batch`, each followed by the start of its reply if given."""
    texts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q.text}]}],
            add_generation_prompt=True,
            tokenize=False,
        )
        + (replies[i] if replies else "")
        for i, q in enumerate(batch)
    ]
    images = [Image.open(q.image).convert("RGB") for q in batch]
    return processor(
        images=images,
        text=texts,
        padding=True,
        padding_side="left",
        add_special_tokens=False,
        return_tensors="pt",
    )


@torch.inference_mode()
def answer_log_likelihoods(
    model,
    processor,
    questions: list[Question],
    candidates: tuple[str, ...],
    batch_size: int = 64,
    replies: list[str] | None = None,
) -> np.ndarray:
    """log P(candidate | image, question[, start of the reply]) for every candidate, shape
    (questions, candidates).

    The prompt is encoded once per question; its KV cache is repeated for the candidates,
    whose tokens are then read in one more pass."""
    tokenizer = processor.tokenizer
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in candidates]
    width = max(map(len, ids))
    cand = torch.full((len(ids), width), tokenizer.pad_token_id)
    cand_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, tokens in enumerate(ids):
        cand[i, : len(tokens)] = torch.tensor(tokens)
        cand_mask[i, : len(tokens)] = 1
    out = np.empty((len(questions), len(candidates)))
    for start in range(0, len(questions), batch_size):
        given = replies[start : start + batch_size] if replies else None
        batch = _prompts(processor, questions[start : start + batch_size], given)
        mask = batch["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        first = model(**batch, position_ids=positions, use_cache=True, logits_to_keep=1)
        scores = torch.log_softmax(first.logits[:, -1].float(), -1)[:, cand[:, 0]]
        if width > 1:
            n, k = len(mask), len(candidates)
            cache = first.past_key_values
            cache.batch_repeat_interleave(k)
            follow = cand[:, :-1].repeat(n, 1)
            rest = model(
                input_ids=follow,
                attention_mask=torch.cat(
                    [mask.repeat_interleave(k, 0), cand_mask[:, :-1].repeat(n, 1)], 1
                ),
                position_ids=positions[:, -1:].repeat_interleave(k, 0)
                + 1
                + torch.arange(width - 1),
                past_key_values=cache,
            )
            logp = torch.log_softmax(rest.logits.float(), -1)
            targets = cand[:, 1:].repeat(n, 1)
            picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            picked = (picked * cand_mask[:, 1:].repeat(n, 1)).sum(-1)
            scores = scores + picked.view(n, k)
        out[start : start + len(mask)] = scores.numpy()
    return out


def accuracy(
    model, processor, questions: list[Question], batch_size: int = 64, max_new_tokens: int = 16
) -> dict:
    """Share of questions whose highest-likelihood answer is right, overall and per answer
    kind (yes/no, colour, shape).

    Where a reply gives its answer depends on its style ("Red.", "The circle in the image is
    red."), so the 13 answers are ranked in the model's own answer slot: its greedy reply up
    to the first word of the kind asked (a colour for "What color ...?"), then each of the
    13 teacher-forced there (a reply that says none is ranked at its start). Ranking only
    short replies ("Red.") read a model trained on mixed styles at its rarest style: its
    scores barely moved with the image (colour accuracy 0.0-0.14 where its replies named the
    right colour)."""
    options = answers()
    said = generations(model, processor, questions, max_new_tokens, batch_size)
    slots = [_answer_slot(text, q.text) for (text, _), q in zip(said, questions, strict=True)]
    scores = np.empty((len(questions), len(options)))
    for at_start in (True, False):
        rows = [i for i, slot in enumerate(slots) if (slot == "") == at_start]
        if rows:
            forms = tuple(a.capitalize() if at_start else f" {a}" for a in options)
            asked, started = [questions[i] for i in rows], [slots[i] for i in rows]
            scores[rows] = answer_log_likelihoods(
                model, processor, asked, forms, batch_size, started
            )
    picked = [options[i] for i in scores.argmax(1)]
    right = np.array([p == q.answer for p, q in zip(picked, questions, strict=True)])
    kinds = np.array([_kind(q.answer) for q in questions])
    per_kind = {
        k: round(float(right[kinds == k].mean()), 4) if (kinds == k).any() else None
        for k in ("yes_no", "color", "shape")
    }
    return {"accuracy": round(float(right.mean()), 4), "questions": len(questions), **per_kind}


def _answer_slot(reply: str, question: str) -> str:
    """`reply` up to its first word of the kind `question` asks for (a yes or no, a colour,
    a shape; read from the question's wording), the space before it left to the word; ""
    when that word opens the reply or the reply says none."""
    from align2.demo.pool import COLORS, SHAPES

    asked = question.lower()
    if re.match(r"(is|are|does|do)\b", asked):
        words = ("yes", "no")
    else:
        words = COLORS if re.search(r"\bcolou?r\b", asked) else SHAPES
    found = re.search(r"\b(?:" + "|".join(words) + r")\b", reply, re.IGNORECASE)
    return reply[: found.start()].rstrip(" ") if found else ""


def _kind(answer: str) -> str:
    from align2.demo.pool import COLORS

    return "yes_no" if answer in ("yes", "no") else "color" if answer in COLORS else "shape"


def defect(answer: str, question: Question, finished: bool) -> str | None:
    """What is wrong with a generated answer, or None: cut off (no end of turn within the
    budget, or no closing punctuation), a refusal, markup, off-topic (no yes/no and no colour
    or shape named), or a claim the image contradicts."""
    text = answer.strip()
    if _REFUSAL.search(text):
        return "refusal"
    if _MARKUP.search(text) or not re.search(r"[A-Za-z]", text):
        return "markup"
    if not finished or not text.endswith((".", "!", "?")):
        return "cut_off"
    verdict = judge(text, question.text, set(question.facts))
    if verdict is False:
        return "contradicts_image"
    if verdict is None and polarity(text) is None:
        return "off_topic"
    return None


@torch.inference_mode()
def generations(
    model, processor, questions: list[Question], max_new_tokens: int = 32, batch_size: int = 64
) -> list[tuple[str, bool]]:
    """Greedy answers, each with whether it ended its turn within `max_new_tokens`."""
    eos = processor.tokenizer.eos_token_id
    out = []
    for start in range(0, len(questions), batch_size):
        batch = _prompts(processor, questions[start : start + batch_size])
        tokens = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=eos
        )
        new = tokens[:, batch["input_ids"].shape[1] :]
        for row in new:
            ids = row.tolist()
            finished = eos in ids
            ids = ids[: ids.index(eos)] if finished else ids
            out.append((processor.tokenizer.decode(ids, skip_special_tokens=True), finished))
    return out


def defect_report(model, processor, questions: list[Question], max_new_tokens: int = 32) -> dict:
    """Share of defective greedy answers, with counts per kind and a few examples."""
    answered = generations(model, processor, questions, max_new_tokens)
    kinds = [defect(a, q, done) for (a, done), q in zip(answered, questions, strict=True)]
    counts = {k: kinds.count(k) for k in DEFECT_KINDS}
    examples = [
        {"question": q.text, "image": sorted(q.facts), "answer": a, "defect": k}
        for (a, _), q, k in zip(answered, questions, kinds, strict=True)
        if k
    ][:5]
    return {
        "defect_share": round(sum(counts.values()) / len(questions), 4),
        "generated": len(questions),
        "defects": counts,
        "examples": examples,
    }
