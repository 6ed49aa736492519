"""The easy-VQA demo pool: determinism, defect injection, ground truth."""

import filecmp
import hashlib
from collections import Counter

import pytest

from align2.data.sources import LlavaJsonSource, load_canonical
from align2.data.validate import Quarantine, ValidationConfig
from align2.demo.pool import (
    DEFECTS,
    MARKUP_NOISE,
    OFF_TOPIC,
    REFUSALS,
    SHAPES,
    DemoPoolConfig,
    build_demo_pool,
    derive_facts,
    easy_vqa_split,
    facts_from_pixels,
    write_demo_pool,
)


def _tree_digest(folder):
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_same_seed_gives_identical_files(tmp_path):
    config = DemoPoolConfig(split="test", size=60, seed=7)
    write_demo_pool(build_demo_pool(config), tmp_path / "a")
    write_demo_pool(build_demo_pool(config), tmp_path / "b")
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    write_demo_pool(build_demo_pool(DemoPoolConfig(split="test", size=60, seed=8)), tmp_path / "c")
    assert not filecmp.cmp(tmp_path / "a" / "llava_pool.json", tmp_path / "c" / "llava_pool.json")


def test_defect_rate_and_kinds():
    rows = build_demo_pool(DemoPoolConfig(split="train", size=800, defect_rate=0.5, seed=1))
    defective = [r for r in rows if r["defects"]]
    assert 0.44 < len(defective) / len(rows) < 0.56
    assert set(Counter(r["defects"][0] for r in defective)) == set(DEFECTS)
    assert not any(r["defects"] for r in build_demo_pool(DemoPoolConfig("test", 100, 0.0)))
    assert all(r["defects"] for r in build_demo_pool(DemoPoolConfig("test", 100, 1.0)))


def test_types_follow_llava_mix():
    counts = Counter(r["type"] for r in build_demo_pool(DemoPoolConfig(split="train", seed=0)))
    assert set(counts) == {"conversation", "detail", "complex_reasoning"}
    assert counts["complex_reasoning"] > counts["conversation"] > counts["detail"]


def _answers(row):
    return [t["value"] for t in row["conversations"][1::2]]


def _questions(row):
    return [t["value"].replace("<image>", "").strip() for t in row["conversations"][::2]]


def test_each_defect_kind_leaves_its_mark():
    rows = build_demo_pool(DemoPoolConfig(split="train", size=1200, defect_rate=1.0, seed=2))
    by_kind = {kind: [r for r in rows if r["defects"] == [kind]] for kind in DEFECTS}
    assert all(by_kind.values())
    for row in by_kind["refusal"]:
        assert any(a in REFUSALS for a in _answers(row))
    for row in by_kind["markup_noise"]:
        assert any(a in MARKUP_NOISE for a in _answers(row))
    for row in by_kind["off_topic"]:
        assert any(a in OFF_TOPIC for a in _answers(row))
    for row in by_kind["repeated_turns"]:
        turns = list(zip(_questions(row), _answers(row), strict=True))
        assert any(a == b for a, b in zip(turns, turns[1:], strict=False))
    for row in by_kind["presupposition"]:
        asked = [s for q in _questions(row) for s in SHAPES if f"the {s}?" in q]
        assert any(s != row["facts"]["shape"] for s in asked)
    for row in by_kind["truncated"]:
        assert any(not a.endswith(".") for a in _answers(row))
    clean = build_demo_pool(DemoPoolConfig(split="train", size=1200, defect_rate=0.0, seed=2))
    for row in clean:  # clean answers are whole sentences or words
        assert all(a.endswith(".") for a in _answers(row))


def test_every_image_has_known_colour_and_shape_and_pixels_agree_with_questions():
    questions, paths = easy_vqa_split("test")
    rows = build_demo_pool(DemoPoolConfig(split="test", seed=0))
    assert len(rows) == len(questions) == 1000
    assert all(r["facts"]["color"] and r["facts"]["shape"] for r in rows)
    for image_id in sorted(questions)[:300]:
        told = derive_facts(questions[image_id])
        seen = facts_from_pixels(paths[image_id])
        assert {k: v for k, v in told.items() if v} == {k: seen[k] for k, v in told.items() if v}


def test_pool_is_valid_llava_input(tmp_path):
    rows = build_demo_pool(DemoPoolConfig(split="test", size=200, seed=4))
    path = write_demo_pool(rows, tmp_path)
    quarantine = Quarantine()
    ds = load_canonical(
        LlavaJsonSource(path, tmp_path / "images"),
        ValidationConfig(tmp_path / "images"),
        quarantine,
    )
    assert len(ds) == 200 and quarantine.ledger.n_quarantined == 0
    assert "defects" not in ds.column_names  # ground truth stays out of what scorers read
    truth = (tmp_path / "truth.jsonl").read_text().splitlines()
    assert len(truth) == 200


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "val"}, "split must be 'train' or 'test'"),
        ({"defect_rate": 1.5}, r"defect_rate must be in \[0, 1\]"),
        ({"size": 0}, "size must be a positive number of rows"),
    ],
)
def test_config_errors_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DemoPoolConfig(**kwargs)
