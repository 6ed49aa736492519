"""Capability scores: mmSSR's own files drive `align2 curate --policy budget`, and the
prompted scorer reads the same ratings a plain forward pass would."""

import json

import datasets
import numpy as np
import pytest
import torch
from helpers import canonical_dataset, run_align2
from transformers import AutoModelForCausalLM, AutoTokenizer

from align2.builders.capabilities import (
    CAPABILITIES,
    COLUMNS,
    RATINGS,
    SYSTEM,
    CapabilityConfig,
    capability_prompts,
    column,
    read_score_files,
    score_capabilities,
    snake,
)
from align2.builders.styler import style_of
from align2.errors import Align2Error


def write_scores(folder, capability, lines):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{snake(capability)}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_mmssr_files_drive_budget_curation(tmp_path, small_pool, tiny_models):
    rows = json.loads((small_pool / "llava_pool.json").read_text())
    truth = {
        r["id"]: r["defects"]
        for r in map(json.loads, (small_pool / "truth.jsonl").read_text().splitlines())
    }
    # Six clean rows of one style, so that the expected set follows from the round robin
    # alone (one style bin per capability).
    same = [
        (i, r["id"])
        for i, r in enumerate(rows)
        if not truth[r["id"]] and style_of(r["conversations"]) == "yes/no"
    ][:6]
    assert len(same) == 6
    (a1, a2, a3), (b1, b2, b3) = same[:3], same[3:]
    scores = tmp_path / "mmssr"
    spatial, attribute, *others = CAPABILITIES
    # Object spatial understanding by position in the pool, attribute identification by id.
    rated = {a1: 5, a2: 4, a3: 3}
    write_scores(scores, spatial, [{"idx": i, "pred_response": str(rated.get((i, rid), 0))}
                                   for i, rid in enumerate(r["id"] for r in rows)])  # fmt: skip
    rated = {a1: 5, b1: 5, b2: 4, b3: 3}
    lines = [{"idx": r["id"], "pred_response": str(rated.get((i, r["id"]), 0))}
             for i, r in enumerate(rows)]  # fmt: skip
    lines[7]["pred_response"] = "four"  # not an integer: a missing score, counted
    lines.append({"idx": "no-such-row", "pred_response": "5"})
    write_scores(scores, attribute, lines)
    for capability in others:  # every row rated 0: no candidate for these capabilities
        write_scores(scores, capability, [{"idx": r["id"], "pred_response": 0} for r in rows])
    # mmSSR's styler's labels, where it gave some, replace the rules' (a3 compares).
    (scores / "style.jsonl").write_text(json.dumps({"idx": a3[1], "pred_response": "comparison"}))
    out = tmp_path / "out"
    result = run_align2(
        "curate", "--llava-json", small_pool / "llava_pool.json",
        "--image-folder", small_pool / "images",
        "--question-model", tiny_models[0], "--answer-model", tiny_models[1], "--out", out,
        "--policy", "budget", "--budget", 4, "--question-share", 1, "--candidate-share", 1,
        "--threshold", 0, "--capability-scores", scores,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # One bar per stage's pass over the rows, none for datasets' bookkeeping around them.
    assert "scores rows 0-" in result.stderr and "styles rows 0-" in result.stderr
    for bookkeeping in ("Flattening the indices", "Filter", "Casting", "Creating parquet"):
        assert bookkeeping not in result.stderr
    scored = datasets.load_dataset("parquet", data_files=str(out / "scored/*.parquet"))["train"]
    assert set(COLUMNS) <= set(scored.column_names)
    kept = sorted(i for i, d in zip(scored["id"], scored["decision"], strict=True) if d == "kept")
    # Round 1, share 4 // 2 = 2 for each capability with candidates. Spatial: bins
    # comparison {a3} and yes/no {a1, a2}, quota 1 each: a3, a1. Attribute: its best, a1, is
    # gone; b1, b2.
    assert kept == sorted(rid for _, rid in (a1, a3, b1, b2))
    assert scored[scored["id"].index(a3[1])]["style"] == "comparison"
    report = json.loads((out / "selection.json").read_text())
    assert (report["budget"], report["kept"], report["shortfall"]) == (4, 4, 0)
    counts = report["capabilities"]["per_file"]
    assert counts[attribute]["not_an_integer"] == 1 and counts[attribute]["unknown_idx"] == 1
    assert counts["style"]["scored"] == 1
    by_id = dict(zip(scored["id"], scored[column(attribute)], strict=True))
    assert by_id[b1[1]] == 5.0
    if rows[7]["id"] in by_id:  # scored, not dropped as a duplicate
        assert np.isnan(by_id[rows[7]["id"]])


def test_score_files_problems_are_one_line_errors(tmp_path):
    ids = ["a", "b"]
    with pytest.raises(Align2Error, match="holds none of mmSSR's files"):
        read_score_files(tmp_path, ids)
    path = write_scores(tmp_path / "s", CAPABILITIES[0], [{"idx": "a", "pred_response": "1"}])
    path.write_text(path.read_text() + "{broken\n")
    with pytest.raises(Align2Error, match=r"object_spatial_understanding.jsonl:2: not JSON"):
        read_score_files(tmp_path / "s", ids)
    write_scores(tmp_path / "s", CAPABILITIES[0], [{"idx": "a", "pred_response": 1}] * 2)
    with pytest.raises(Align2Error, match="idx 'a' appears twice"):
        read_score_files(tmp_path / "s", ids)
    write_scores(tmp_path / "s", CAPABILITIES[0], [{"idx": 1, "pred_response": 1}])
    with pytest.raises(Align2Error, match="validation quarantined rows"):
        read_score_files(tmp_path / "s", ids, by_position=False)
    columns, styles, report = read_score_files(tmp_path / "s", ids)
    scores = columns[column(CAPABILITIES[0])]
    assert np.isnan(scores[0]) and scores[1] == 1
    assert report[CAPABILITIES[0]] == {"scored": 1, "missing": 1, "not_an_integer": 0,
                                       "unknown_idx": 0}  # fmt: skip


def expected_ratings(folder, conversations):
    """Each capability's expected rating from a plain forward pass over its whole prompt."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    digits = [tokenizer(r, add_special_tokens=False)["input_ids"][0] for r in RATINGS]
    values = []
    for prompt in capability_prompts(conversations):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1].float()
        p = torch.softmax(torch.log_softmax(logits, -1)[digits], -1).numpy()
        values.append(float(p @ np.arange(len(RATINGS))))
    return values


def test_prompted_scorer_reads_the_ratings_a_plain_forward_pass_reads(tmp_path, lively_lm):
    rows = [
        {"id": f"r{i}", "image": None, "type": "conversation", "conversations": [
            {"from": "human", "value": f"<image>\nWhat color is shape {i}?"},
            {"from": "gpt", "value": ["Red.", "It is blue.", "Green, as the image shows."][i]},
        ]}
        for i in range(3)
    ]  # fmt: skip
    dataset = canonical_dataset(rows)
    config = CapabilityConfig(model=lively_lm, batch_size=2)
    added = score_capabilities(dataset, config, tmp_path / "cache")
    assert added.column_names == list(COLUMNS)
    table = np.array([added[name] for name in COLUMNS]).T  # rows x capabilities
    assert ((table >= 0) & (table <= 5)).all()
    assert table.std(axis=0).max() > 0.01  # scores differ by row
    for row, turns in enumerate(dataset["conversations"]):  # the shared prefix changes nothing
        np.testing.assert_allclose(table[row], expected_ratings(lively_lm, turns), atol=1e-4)
    again = score_capabilities(dataset, config, tmp_path / "cache")  # from the cache
    assert np.array([again[name] for name in COLUMNS]).T.tolist() == table.tolist()
    assert len(list((tmp_path / "cache").glob("capabilities-*.arrow"))) == 1


def test_a_vision_scorer_sees_the_image_and_reads_what_a_plain_forward_reads(tmp_path, tiny_llava):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from align2.builders.capabilities import vision_chat
    from align2.demo.pool import DemoPoolConfig, build_demo_pool

    rows = build_demo_pool(DemoPoolConfig(split="test", size=3, seed=2, defect_rate=0.0))
    dataset = canonical_dataset(rows)
    added = score_capabilities(dataset, CapabilityConfig(model=str(tiny_llava)), tmp_path)
    table = np.array([added[name] for name in COLUMNS]).T  # rows x capabilities
    assert ((table >= 0) & (table <= 5)).all() and table.std(axis=0).max() > 0.01
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava).eval()
    processor = AutoProcessor.from_pretrained(tiny_llava)
    digits = [processor.tokenizer(r, add_special_tokens=False)["input_ids"][0] for r in RATINGS]
    for row, r in enumerate(rows):  # each prompt alone, unpadded: the batch changes nothing
        image = Image.open(r["image"]).convert("RGB")
        expected = []
        for prompt in capability_prompts(r["conversations"]):
            text = vision_chat(processor, f"{SYSTEM}\n\n{prompt}", True)
            inputs = processor(images=[image], text=[text], add_special_tokens=False,
                               return_tensors="pt")  # fmt: skip
            with torch.no_grad():
                logits = model(**inputs).logits[0, -1].float()
            p = torch.softmax(torch.log_softmax(logits, -1)[digits], -1).numpy()
            expected.append(float(p @ np.arange(len(RATINGS))))
        np.testing.assert_allclose(table[row], expected, atol=1e-4)
    blank = canonical_dataset([{**rows[0], "image": None, "id": "no-image"}])
    text_only = score_capabilities(blank, CapabilityConfig(model=str(tiny_llava)), tmp_path)
    assert [text_only[name][0] for name in COLUMNS] != table[0].tolist()  # the image mattered
