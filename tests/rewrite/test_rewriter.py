"""The rewriter on the real path: a tiny random causal LM built from a config (fast) and, in
one small test, the embedded SmolLM2 on a handful of demo samples."""

import datasets
import numpy as np
import pytest
from helpers import canonical_dataset

from align2.demo.pool import DemoPoolConfig, build_demo_pool
from align2.models import generation
from align2.models.generation import GenerationCache, GenerationConfig
from align2.rewrite.rewriter import RewriteConfig, rewrite_dataset, rewrite_report
from align2.rewrite.truth import rewrite_truth_report


def _pool(n: int, seed: int = 4) -> datasets.Dataset:
    rows = build_demo_pool(DemoPoolConfig(split="test", size=n, seed=seed, defect_rate=0.0))
    return canonical_dataset(rows, source="demo")


def test_every_turn_gets_a_decision_and_originals_are_kept(tmp_path, tiny_lm):
    ds = _pool(6)
    config = RewriteConfig(model=tiny_lm, generation=GenerationConfig(max_new_tokens=12))
    out, report = rewrite_dataset(ds, config, tmp_path / "work")
    assert out["original_conversations"] == ds["conversations"]
    for row in out:
        assert len(row["rewrite_decisions"]) == len(row["conversations"])  # questions too
        kept_original = all(d != "accepted" for d in row["rewrite_decisions"])
        assert kept_original == (row["conversations"] == row["original_conversations"])
        assert row["rewritten"] == (not kept_original)
        assert row["conversations"][0]["value"].count("<image>") == 1
    assert report == {**rewrite_report(out["rewrite_decisions"]), **report}
    # The report's figures, read off the texts rather than the decisions: a turn counts as
    # rewritten exactly when its text changed.
    changed = [
        a["value"] != b["value"]
        for new, old in zip(out["conversations"], ds["conversations"], strict=True)
        for a, b in zip(new, old, strict=True)
    ]
    assert report["turns"] == len(changed)
    assert round(report["rewritten"] * report["turns"]) == sum(changed)
    assert report["rows_rewritten"] == sum(row["rewritten"] for row in out)
    assert sum(report["guards"].values()) == round(report["guarded_out"] * report["turns"])


def test_a_rerun_reads_the_caches_and_generates_nothing(tmp_path, tiny_lm, monkeypatch):
    ds = _pool(4)
    config = RewriteConfig(model=tiny_lm, generation=GenerationConfig(max_new_tokens=8))
    first, _ = rewrite_dataset(ds, config, tmp_path / "work")
    cached = (
        GenerationCache(tmp_path / "work" / "generation_cache.sqlite")
        .db.execute("SELECT COUNT(*) FROM generations")
        .fetchone()[0]
    )
    assert cached == sum(len(c) for c in ds["conversations"])

    def must_not_generate(*args, **kwargs):
        raise AssertionError("a cached prompt was generated again")

    monkeypatch.setattr(generation, "generate_batch", must_not_generate)
    again, _ = rewrite_dataset(ds, config, tmp_path / "work")  # the stored shard
    assert again["conversations"] == first["conversations"]
    for shard in (tmp_path / "work").glob("rewrites-*.arrow"):
        shard.unlink()  # the shard gone, the generation cache still has every prompt
    again, _ = rewrite_dataset(ds, config, tmp_path / "work")
    assert again["conversations"] == first["conversations"]
    assert again["rewrite_decisions"] == first["rewrite_decisions"]
    # Another generation config is another key: it would generate.
    other = RewriteConfig(model=tiny_lm, generation=GenerationConfig(max_new_tokens=9))
    with pytest.raises(AssertionError, match="generated again"):
        rewrite_dataset(ds, other, tmp_path / "work")


@pytest.mark.slow
def test_smollm2_rewrites_keep_the_true_answers(tmp_path, tiny_models):
    rows = build_demo_pool(DemoPoolConfig(split="test", size=4, seed=9, defect_rate=0.0))
    ds = canonical_dataset(rows, source="demo")
    config = RewriteConfig(
        generation=GenerationConfig(max_new_tokens=48), answer_model=tiny_models[1]
    )
    out, report = rewrite_dataset(ds, config, tmp_path / "work")
    _check_answer_reward(ds, out, report, tiny_models[1])
    assert report["turns"] == sum(len(c) for c in ds["conversations"])
    image_facts = {r["id"]: {r["facts"]["color"], r["facts"]["shape"]} for r in rows}
    checked = rewrite_truth_report(list(out.remove_columns("image")), image_facts)
    assert checked["false"] == 0, checked
    nll = report["inner_llm_nll"]
    assert nll["turns"] == checked["accepted_answers"]
    assert nll["all_answers"]["turns"] == sum(len(c) // 2 for c in ds["conversations"])
    assert 0 < nll["all_answers"]["original"] < 10
    for row in out:
        for turn, original, decision in zip(
            row["conversations"],
            row["original_conversations"],
            row["rewrite_decisions"],
            strict=True,
        ):
            assert (turn == original) == (decision != "accepted")


def _check_answer_reward(ds, out, report, answer_model):
    """The report's answer-reward figures are the answer model's own scores of the answer
    turns that passed the rules (accepted, reviewed out or refused by it)."""
    from align2.models.backbones import load_reward_model
    from align2.models.scoring import score_texts
    from align2.reward.templates import answer_text

    scored, images = [], []
    for row in out:
        question = ""
        for turn, original, decision in zip(
            row["conversations"], row["original_conversations"], row["rewrite_decisions"],
            strict=True,
        ):  # fmt: skip
            if turn["from"] == "human":
                question = original["value"].replace("<image>", "").strip()
            elif decision in ("accepted", "reviewed_out", "reward_drop"):
                scored.append((question, original["value"], decision))
                images.append(row["image"])
    reward = report["answer_reward"]
    assert scored and reward["scored"] == len(scored)
    assert reward["refused"] == sum(d == "reward_drop" for _, _, d in scored)
    texts = [answer_text(question, answer) for question, answer, _ in scored]
    expected = score_texts(load_reward_model(answer_model), texts, images)
    assert reward["mean_original"] == pytest.approx(float(expected.mean()), abs=1e-4)
    assert "reward_original" not in out.column_names  # the figures stay in the work folder


def test_questions_can_be_left_alone(tmp_path, tiny_lm):
    ds = _pool(3)
    config = RewriteConfig(
        model=tiny_lm, rewrite_questions=False, generation=GenerationConfig(max_new_tokens=6)
    )
    out, report = rewrite_dataset(ds, config, None)
    for row in out:
        pairs = zip(row["conversations"], row["original_conversations"], strict=True)
        for (turn, original), decision in zip(pairs, row["rewrite_decisions"], strict=True):
            if turn["from"] == "human":
                assert decision == "skipped" and turn == original
            else:
                assert decision != "skipped"
    assert report["skipped"] == sum(len(c) // 2 for c in ds["conversations"])


def test_a_batch_sharing_a_prefix_generates_what_each_prompt_alone_does(tiny_lm):
    import torch

    from align2.models.generation import LLM, generate_batch, shared_prefix

    llm = LLM(tiny_lm)
    model, tokenizer = llm.load()
    system = "You rewrite text. Keep every fact."
    prompts = [
        llm.chat(system, user)
        for user in ("Rewrite: The circle is red.", "Rewrite: No.", "Rewrite: A big blue square.")
    ]
    config = GenerationConfig(max_new_tokens=8, bf16="off")
    budgets = [8, 2, 5]  # rows leave the batch at their own budgets
    alone = []
    for prompt, budget in zip(prompts, budgets, strict=True):  # the reference: plain
        # `generate`, one unpadded prompt at a time
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=budget, do_sample=False, pad_token_id=0)
        alone.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip())
    assert generate_batch(llm, prompts, config, budgets) == alone
    assert len(set(map(len, alone))) == 3  # three lengths: each row stopped on its own
    token_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    assert shared_prefix(token_ids) > 10  # the system prompt and chat markup
    assert shared_prefix([[1, 2, 3], [1, 2]]) == 1  # each row keeps a token of its own


def test_option_probabilities_of_a_shared_prefix_batch_match_each_prompt_alone(lively_lm):
    import torch

    from align2.models.generation import LLM, option_probabilities

    llm = LLM(lively_lm)
    model, tokenizer = llm.load()
    system = "Two versions of a text. Which is clearer? Reply with A or B."
    users = ("A: The circle is red.\nB: Red circle.", "A: No.\nB: No, there is none.", "A: Yes")
    prompts = [llm.chat(system, user) for user in users]
    options = ("A", "B")
    option_ids = [tokenizer(o, add_special_tokens=False)["input_ids"][0] for o in options]
    alone = []
    for prompt in prompts:  # the reference: one unpadded forward per prompt
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model(ids).logits[0, -1].float().log_softmax(-1)[option_ids]
        alone.append(logits.softmax(-1).numpy())
    batched = option_probabilities(llm, prompts, options, batch_size=3)
    assert np.allclose(batched, np.stack(alone), atol=1e-5)
    assert np.abs(np.stack(alone)[:, 0] - 0.5).max() > 0.01  # the rows are told apart


def test_answer_nll_is_the_teacher_forced_loss_of_each_answer_alone(tiny_lm):
    import torch

    from align2.models.generation import LLM, answer_nll

    llm = LLM(tiny_lm)
    model, tokenizer = llm.load()
    questions = ["Is there a red shape?", "What colour is the circle in the picture?", "Shape?"]
    answers = ["Yes.", "The circle in the image is blue, a light blue.", "A triangle."]
    alone = []
    for question, answer in zip(questions, answers, strict=True):  # transformers' own loss
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + tokenizer(answer, add_special_tokens=False)["input_ids"]])
        labels = ids.clone()
        labels[0, : len(prompt_ids)] = -100
        with torch.inference_mode():
            alone.append(model(input_ids=ids, labels=labels).loss.item())
    batched = answer_nll(llm, questions, answers, batch_size=3)
    np.testing.assert_allclose(batched, alone, rtol=1e-4)
    assert len(set(np.round(batched, 3))) == 3  # each answer its own figure


def test_the_answer_model_refuses_a_rewrite_it_scores_much_lower(tiny_models):
    from align2.models.backbones import load_reward_model
    from align2.models.scoring import score_texts
    from align2.reward.templates import answer_text
    from align2.rewrite.guards import ACCEPTED, GuardConfig
    from align2.rewrite.rewriter import _guard_reward_drop, _turns

    ds = _pool(3)
    turns = [t for t in _turns(ds["conversations"], questions=False)][:3]
    rewrites = ["It is shown.", "Yes, indeed.", turns[2].text + " Indeed."]
    images = [ds[t.row]["image"] for t in turns]
    backbone = load_reward_model(tiny_models[1])
    texts = [answer_text(t.question, t.text) for t in turns]
    texts += [answer_text(t.question, r) for t, r in zip(turns, rewrites, strict=True)]
    scores = score_texts(backbone, texts, images * 2)
    drops = scores[:3] - scores[3:]
    limit = float(np.sort(drops)[1])  # refuse exactly the rewrite that falls furthest
    config = RewriteConfig(
        answer_model=tiny_models[1], guards=GuardConfig(max_reward_drop=limit + 1e-4)
    )
    decisions = [ACCEPTED] * 3
    before, after = _guard_reward_drop(
        turns, rewrites, decisions, config, lambda rows: ds.select(rows)["image"]
    )
    worst = int(np.argmax(drops))
    assert decisions == ["reward_drop" if i == worst else ACCEPTED for i in range(3)]
    assert [before[i] for i in range(3)] == pytest.approx(scores[:3].tolist(), abs=1e-5)
    assert [after[i] for i in range(3)] == pytest.approx(scores[3:].tolist(), abs=1e-5)
