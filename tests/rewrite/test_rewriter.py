"""The rewriter on the real path: a tiny random causal LM built from a config (fast) and, in
one small test, the embedded SmolLM2 on a handful of demo samples."""

import datasets
import numpy as np
import pytest
from helpers import canonical_dataset

from align2.builders.demo_pool import DemoPoolConfig, build_demo_pool
from align2.builders.quality import rewrite_truth_report
from align2.rewrite import generation
from align2.rewrite.generation import GenerationCache, GenerationConfig
from align2.rewrite.rewriter import RewriteConfig, rewrite_dataset, rewrite_report


def _pool(n: int, seed: int = 4) -> datasets.Dataset:
    rows = build_demo_pool(DemoPoolConfig(split="test", size=n, seed=seed, defect_rate=0.0))
    return canonical_dataset(rows, source="demo")


def test_every_turn_gets_a_decision_and_originals_are_kept(tmp_path, tiny_lm):
    ds = _pool(6)
    config = RewriteConfig(model=tiny_lm, generation=GenerationConfig(max_new_tokens=12))
    out = rewrite_dataset(ds, config, tmp_path / "cache.sqlite")
    assert out["original_conversations"] == ds["conversations"]
    for row in out:
        assert len(row["rewrite_decisions"]) == len(row["conversations"])  # questions too
        kept_original = all(d != "accepted" for d in row["rewrite_decisions"])
        assert kept_original == (row["conversations"] == row["original_conversations"])
        assert row["rewritten"] == (not kept_original)
        assert row["conversations"][0]["value"].count("<image>") == 1
    report = rewrite_report(out["rewrite_decisions"])
    shares = report["rewritten"] + report["reviewed_out"] + report["guarded_out"]
    assert shares + report["unchanged"] == pytest.approx(1.0, abs=1e-3)


def test_a_rerun_reads_the_cache_and_generates_nothing(tmp_path, tiny_lm, monkeypatch):
    ds = _pool(4)
    config = RewriteConfig(model=tiny_lm, generation=GenerationConfig(max_new_tokens=8))
    first = rewrite_dataset(ds, config, tmp_path / "cache.sqlite")
    cached = (
        GenerationCache(tmp_path / "cache.sqlite")
        .db.execute("SELECT COUNT(*) FROM generations")
        .fetchone()[0]
    )
    assert cached == sum(len(c) for c in ds["conversations"])

    def must_not_generate(*args, **kwargs):
        raise AssertionError("a cached prompt was generated again")

    monkeypatch.setattr(generation, "generate_batch", must_not_generate)
    again = rewrite_dataset(ds, config, tmp_path / "cache.sqlite")
    assert again["conversations"] == first["conversations"]
    assert again["rewrite_decisions"] == first["rewrite_decisions"]
    # Another generation config is another key: it would generate.
    other = RewriteConfig(model=tiny_lm, generation=GenerationConfig(max_new_tokens=9))
    with pytest.raises(AssertionError, match="generated again"):
        rewrite_dataset(ds, other, tmp_path / "cache.sqlite")


@pytest.mark.slow
def test_smollm2_rewrites_keep_the_true_answers(tmp_path):
    rows = build_demo_pool(DemoPoolConfig(split="test", size=4, seed=9, defect_rate=0.0))
    ds = canonical_dataset(rows, source="demo")
    config = RewriteConfig(generation=GenerationConfig(max_new_tokens=48))
    out = rewrite_dataset(ds, config, tmp_path / "cache.sqlite")
    report = rewrite_report(out["rewrite_decisions"])
    assert report["turns"] == sum(len(c) for c in ds["conversations"])
    truth = {r["id"]: r["facts"]["answers"] for r in rows}
    checked = rewrite_truth_report(list(out), truth)
    assert checked["keep_truth"] in (None, 1.0), checked
    for row in out:
        for turn, original, decision in zip(
            row["conversations"],
            row["original_conversations"],
            row["rewrite_decisions"],
            strict=True,
        ):
            assert (turn == original) == (decision != "accepted")


def test_questions_can_be_left_alone(tmp_path, tiny_lm):
    ds = _pool(3)
    config = RewriteConfig(
        model=tiny_lm, rewrite_questions=False, generation=GenerationConfig(max_new_tokens=6)
    )
    out = rewrite_dataset(ds, config, None)
    for row in out:
        pairs = zip(row["conversations"], row["original_conversations"], strict=True)
        for (turn, original), decision in zip(pairs, row["rewrite_decisions"], strict=True):
            if turn["from"] == "human":
                assert decision == "skipped" and turn == original
            else:
                assert decision != "skipped"
    report = rewrite_report(out["rewrite_decisions"])
    assert report["skipped"] == sum(len(c) // 2 for c in ds["conversations"])


def test_a_batch_sharing_a_prefix_generates_what_each_prompt_alone_does(tiny_lm):
    import torch

    from align2.rewrite.generation import LLM, generate_batch, shared_prefix

    llm = LLM(tiny_lm)
    model, tokenizer = llm.load()
    system = "You rewrite text. Keep every fact."
    prompts = [
        llm.chat(system, user)
        for user in ("Rewrite: The circle is red.", "Rewrite: No.", "Rewrite: A big blue square.")
    ]
    config = GenerationConfig(max_new_tokens=8, bf16="off")
    alone = []
    for prompt in prompts:  # the reference: plain `generate`, one unpadded prompt at a time
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
        alone.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip())
    assert generate_batch(llm, prompts, config) == alone
    token_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    assert shared_prefix(token_ids) > 10  # the system prompt and chat markup
    assert shared_prefix([[1, 2, 3], [1, 2]]) == 1  # each row keeps a token of its own


def test_option_probabilities_of_a_shared_prefix_batch_match_each_prompt_alone(lively_lm):
    import torch

    from align2.rewrite.generation import LLM, option_probabilities

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
