"""Scoring with datasets.map: real tiny reward models, cache hits keyed on the model, best
candidate kept per turn, and a run killed mid-map that resumes to the uninterrupted result."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
from helpers import save_tiny_hub_vlm

from align2.builders.score import ScoringConfig, score_dataset
from align2.data.engines import engine_named
from align2.data.schema import FEATURES
from align2.data.sources import LlavaJsonSource, load_canonical
from align2.data.validate import Quarantine, ValidationConfig
from align2.demo.pool import DemoPoolConfig, build_demo_pool, write_demo_pool
from align2.models.backbones import build_backbone, load_reward_model
from align2.models.scoring import score_texts
from align2.reward.templates import answer_text, question_text

HERE = Path(__file__).parent


def _load(pool):
    images = Path(pool) / "images"
    source = LlavaJsonSource(Path(pool) / "llava_pool.json", images)
    return load_canonical(source, ValidationConfig(image_folder=images), Quarantine())


def _scores(ds):
    return {name: ds[name] for name in ("question_score", "answer_scores", "answer_score")}


def test_scores_match_the_model_and_reruns_come_from_cache(tmp_path, small_pool, tiny_models):
    question, answer, other = tiny_models
    ds = _load(small_pool)
    config = ScoringConfig(question, answer, checkpoint_rows=25)
    first = score_dataset(ds, config, tmp_path)
    files = sorted(tmp_path.glob("scores-*.arrow"))
    assert len(files) == 3  # 60 rows in shards of 25
    row = ds[7]
    humans = [t["value"] for t in row["conversations"] if t["from"] == "human"]
    expected_q = score_texts(load_reward_model(question), [question_text(humans)], [row["image"]])
    assert first[7]["question_score"] == pytest.approx(float(expected_q[0]), abs=1e-5)
    assert first[7]["answer_score"] == pytest.approx(np.mean(first[7]["answer_scores"]))
    assert len(first[7]["answer_scores"]) == len(humans)

    mtimes = [f.stat().st_mtime_ns for f in files]
    again = score_dataset(ds, config, tmp_path)
    assert _scores(again) == _scores(first)
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # loaded, not recomputed

    # Another answer model is another cache key: new files, other scores.
    changed = score_dataset(ds, ScoringConfig(question, other, checkpoint_rows=25), tmp_path)
    assert len(list(tmp_path.glob("scores-*.arrow"))) == 6
    assert changed["question_score"] == first["question_score"]
    assert changed["answer_score"] != first["answer_score"]


def test_best_candidate_replaces_the_answer(tmp_path, small_pool, tiny_models):
    question, answer, _ = tiny_models
    ds = _load(small_pool).select(range(4))
    options = ["A red circle.", "A blue square.", "Nothing.", "It is a triangle."]
    candidates = [[options if i == 0 else []] for i in range(4)]
    with_candidates = ds.add_column(
        "candidates", candidates, feature=datasets.List(datasets.List(datasets.Value("string")))
    )
    scored = score_dataset(with_candidates, ScoringConfig(question, answer), tmp_path)
    row = with_candidates[0]
    q = row["conversations"][0]["value"]
    texts = [answer_text(q, option) for option in options]
    expected = score_texts(load_reward_model(answer), texts, [row["image"]] * len(options))
    best = int(np.argmax(expected))
    assert scored[0]["answer_choice"][0] == best
    assert scored[0]["conversations"][1]["value"] == options[best]
    assert scored[0]["answer_scores"][0] == pytest.approx(float(expected[best]), abs=1e-5)
    assert scored[1]["conversations"] == with_candidates[1]["conversations"]  # one answer: as is
    assert scored[1]["answer_choice"] == [0] * len(scored[1]["answer_scores"])


def test_empty_dataset_scores_to_an_empty_table(tmp_path, tiny_models):
    empty = datasets.Dataset.from_dict({k: [] for k in FEATURES}, features=FEATURES)
    scored = score_dataset(empty, ScoringConfig(*tiny_models[:2]), tmp_path)
    assert len(scored) == 0 and "answer_score" in scored.column_names


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, tiny_models, engine):
    """Killed mid-way (with every process it started: Ray's too), a run resumes on the same
    engine from the shards it finished, to what an uninterrupted local run gives."""
    pool = tmp_path / "pool"
    write_demo_pool(build_demo_pool(DemoPoolConfig(split="test", size=200, seed=2)), pool)
    question, answer, _ = tiny_models
    cache = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, str(HERE / "score_until_killed.py"), str(pool), question, answer]
        + [str(cache), engine],
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so the kill takes all of it
    )
    deadline = time.monotonic() + 180
    while len(list(cache.glob("scores-*.arrow"))) < 3 and time.monotonic() < deadline:
        assert child.poll() is None, "the scoring run ended before it could be interrupted"
        time.sleep(0.02)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    finished = {f: f.stat().st_mtime_ns for f in cache.glob("scores-*.arrow")}
    assert 3 <= len(finished) < 13  # really interrupted: 200 rows are 13 shards of 16

    ds = _load(pool)
    config = ScoringConfig(question, answer, batch_size=4, window=8, checkpoint_rows=16)
    resumed = score_dataset(ds, config, cache, engine_named(engine))
    assert {f: f.stat().st_mtime_ns for f in finished} == finished  # reused, not redone
    assert len(list(cache.glob("scores-*.arrow"))) == 13
    uninterrupted = score_dataset(ds, config, tmp_path / "clean")
    assert _scores(resumed) == _scores(uninterrupted)
    assert resumed["id"] == ds["id"]


def test_a_hub_vlm_reward_model_scores_each_row_with_its_image(tmp_path, small_pool):
    """A Hub VLM classifier (a tiny LLaVA + score head, its processor saved beside it) scores
    through the map pipeline: each row in a padded batch as it scores alone, with its image."""
    backbone = build_backbone(str(save_tiny_hub_vlm("llava", tmp_path / "hub")))
    model_dir = tmp_path / "rm"
    backbone.model.save_pretrained(model_dir)
    backbone.save_preprocessing(model_dir)
    ds = _load(small_pool).select(range(12))
    scored = score_dataset(ds, ScoringConfig(str(model_dir), str(model_dir)), tmp_path / "cache")
    reward_model = load_reward_model(model_dir)
    alone = []
    for row in ds:
        humans = [t["value"] for t in row["conversations"] if t["from"] == "human"]
        alone.append(score_texts(reward_model, [question_text(humans)], [row["image"]])[0])
    assert scored["question_score"] == pytest.approx(alone, abs=1e-4)
    assert len(set(np.round(alone, 4))) > 6  # images and texts differ: so do the scores
