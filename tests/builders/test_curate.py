"""The curation pipeline end to end on a small demo pool with real tiny reward models: every
row accounted for, outputs on disk load back, Ray and the local engine keep the same rows."""

import json
import shutil
from dataclasses import replace

import datasets
import pytest

from align2.builders.capabilities import CapabilityConfig
from align2.builders.curate import CurationConfig, curate
from align2.builders.dedup import DedupConfig
from align2.builders.llm_styler import LLMStylerConfig
from align2.builders.pipeline import run_curation
from align2.builders.score import ScoringConfig
from align2.builders.select import Align2Selection, BudgetSelection, make_policy
from align2.builders.stages import runs_table
from align2.data.engines import ENGINES, engine_named
from align2.data.sources import LlavaJsonSource, load_canonical
from align2.data.validate import Quarantine, ValidationConfig
from align2.errors import Align2Error
from align2.models.generation import GenerationConfig
from align2.rewrite.rewriter import RewriteConfig, rewrite_dataset


def _pool_with_a_duplicate(small_pool, tmp_path):
    pool = tmp_path / "pool"
    shutil.copytree(small_pool, pool)
    rows = json.loads((pool / "llava_pool.json").read_text())
    copy = dict(rows[3], id="copy-of-3")
    rows.append(copy)
    rows.append({"id": "broken", "image": "missing.png", "conversations": rows[0]["conversations"]})
    (pool / "llava_pool.json").write_text(json.dumps(rows))
    with (pool / "truth.jsonl").open("a") as f:
        f.write(json.dumps({"id": "copy-of-3", "defects": [], "facts": {}}) + "\n")
    return pool


def test_every_row_is_kept_dropped_or_quarantined(tmp_path, small_pool, tiny_models):
    pool = _pool_with_a_duplicate(small_pool, tmp_path)
    out = tmp_path / "out"
    run = run_curation(
        sources=[LlavaJsonSource(pool / "llava_pool.json", pool / "images")],
        out=out,
        selection=Align2Selection(0.5, 0.5),
        question_model=tiny_models[0],
        answer_model=tiny_models[1],
        truth=pool / "truth.jsonl",
    )
    ledger = run.ledger
    ledger.check()
    assert ledger.total == 62
    assert ledger.quarantined == {"image_missing": 1}
    assert ledger.dropped["duplicate_exact"] == 1
    truth = [json.loads(line) for line in (pool / "truth.jsonl").read_text().splitlines()]
    repeats = sum("repeated_turns" in t["defects"] for t in truth)
    assert repeats and ledger.dropped["repeated_turn"] == repeats
    assert ledger.kept + ledger.n_dropped == 61
    scored = run.curation.scored
    assert len(scored) == 61
    dup = scored[scored["id"].index("copy-of-3")]
    assert (dup["reason"], dup["duplicate_of"], dup["answer_score"]) == (
        "duplicate_exact",
        "easyvqa-test-" + scored[3]["id"].split("-")[-1],
        None,
    )
    # The outputs load with plain `datasets`: images embedded in the curated rows.
    curated = datasets.load_dataset("parquet", data_files=run.paths["curated"], split="train")
    assert len(curated) == ledger.kept and curated[0]["image"].size == (64, 64)
    everything = datasets.load_dataset("parquet", data_files=run.paths["scored"], split="train")
    assert "image" not in everything.column_names and len(everything) == 61
    assert json.loads((out / "ledger.json").read_text()) == ledger.to_dict()
    quality = json.loads((out / "quality.json").read_text())
    assert quality["kept"] == ledger.kept and quality["rows"] == 60 - repeats  # the scored rows
    assert (out / "quarantine.jsonl").read_text().count("image_missing") == 1


def test_unknown_policy_and_options_name_what_is_allowed():
    with pytest.raises(Align2Error, match="unknown selection policy 'best'; allowed: align2"):
        make_policy("best")
    with pytest.raises(Align2Error, match="policy 'align2' takes no k; its options"):
        make_policy("align2", k=3)
    assert make_policy("budget", ratio=0.3, budget=None) == BudgetSelection(ratio=0.3)


@pytest.mark.slow
def test_ray_runs_every_stage_to_the_local_engines_result(
    tmp_path, small_pool, tiny_models, lively_lm
):
    """Every stage with row-wise work (LLM styles, dedup's hashes, scores, prompted
    capability scores, then the rewrite with its guards and review) computed on a local Ray
    instance gives the local engine's rows: the same kept set and every column the same, the
    budget policy reading styles and capabilities, and the same rewrite report."""
    import ray

    pool = _pool_with_a_duplicate(small_pool, tmp_path)
    source = LlavaJsonSource(pool / "llava_pool.json", pool / "images")
    quarantine = Quarantine()
    dataset = load_canonical(source, ValidationConfig(image_folder=pool / "images"), quarantine)
    config = CurationConfig(
        scoring=ScoringConfig(*tiny_models[:2], checkpoint_rows=16),
        selection=BudgetSelection(ratio=0.3),
        styler=LLMStylerConfig(model=lively_lm),
        capabilities=CapabilityConfig(model=lively_lm, checkpoint_rows=32),
    )
    local = curate(dataset, config, tmp_path / "local", quarantine.ledger)
    on_ray = curate(dataset, config, tmp_path / "ray", quarantine.ledger, engine="ray")
    assert ray.is_initialized()
    for stage in ("styles", "dedup", "scores", "capabilities"):  # the engine wrote the shards
        assert list((tmp_path / "ray" / stage).glob("*.arrow")), stage
    assert on_ray.ledger == local.ledger and on_ray.ledger.dropped["duplicate_exact"] == 1
    assert on_ray.kept["id"] == local.kept["id"]
    assert on_ray.scored.column_names == local.scored.column_names
    assert len(set(local.scored["style"])) > 1  # the styler's labels vary by row
    for name in local.scored.column_names:
        assert on_ray.scored[name] == local.scored[name], name
    assert on_ray.selection == local.selection

    rewrite = RewriteConfig(
        model=lively_lm, generation=GenerationConfig(max_new_tokens=8), answer_model=tiny_models[1]
    )
    rewritten = {
        engine: rewrite_dataset(
            local.kept, rewrite, tmp_path / f"rewrite-{engine}", engine_named(engine)
        )
        for engine in ENGINES
    }
    (local_rows, local_report), (ray_rows, ray_report) = rewritten["local"], rewritten["ray"]
    assert list((tmp_path / "rewrite-ray").glob("rewrites-*.arrow"))
    assert ray_report == local_report and local_report["turns"] > 0
    assert ray_rows.column_names == local_rows.column_names
    for name in local_rows.column_names:
        assert ray_rows[name] == local_rows[name], name


def test_weakest_turn_reads_list_scores_of_a_selected_table():
    from align2.builders.curate import weakest_turn

    table = datasets.Dataset.from_dict({"answer_scores": [[1.0, 2.0], [0.5], [3.0, -1.0], [7.0]]})
    picked = table.select([2, 0, 3]).with_format("arrow")  # an indices mapping, reordered
    assert weakest_turn(picked["answer_scores"]).tolist() == [-1.0, 1.0, 7.0]


def test_changing_one_stage_setting_reruns_that_stage_and_the_ones_after(
    tmp_path, small_pool, tiny_models
):
    """Stages are cached by signature: a dedup setting reruns dedup, scoring and selection
    (their input changed) but not styling; a selection setting reruns selection only; a
    speed setting (batch size) nothing. Cached and computed results are the same rows."""
    source = LlavaJsonSource(small_pool / "llava_pool.json", small_pool / "images")
    quarantine = Quarantine()
    rows = load_canonical([source], ValidationConfig(), quarantine, path=tmp_path / "pool.arrow")
    base = CurationConfig(
        scoring=ScoringConfig(question_model=tiny_models[0], answer_model=tiny_models[1]),
        selection=Align2Selection(0.5, 0.5),
    )

    def run(config):
        curation = curate(rows, config, tmp_path / "work", quarantine.ledger)
        statuses = {name: run["status"] for name, run in curation.runs.items()}
        return curation, statuses

    first, statuses = run(base)
    assert set(statuses.values()) == {"computed"}
    assert list(statuses) == ["style", "dedup", "score", "select"]
    again, statuses = run(base)
    assert set(statuses.values()) == {"cached"}
    scored = sum(s is not None for s in first.scored["answer_score"])  # dedup's survivors
    assert runs_table(again.runs).splitlines()[3].split()[:2] == ["score", str(scored)]
    assert again.scored.to_dict() == first.scored.to_dict()
    looser = replace(base, dedup=DedupConfig(text_threshold=0.5))
    _, statuses = run(looser)
    assert statuses == {
        "style": "cached", "dedup": "computed", "score": "computed", "select": "computed"
    }  # fmt: skip
    wider = replace(base, selection=Align2Selection(0.8, 0.8))
    curation, statuses = run(wider)
    assert [s for s, status in statuses.items() if status == "computed"] == ["select"]
    assert curation.ledger.kept > first.ledger.kept
    faster = replace(base, scoring=replace(base.scoring, batch_size=7))
    _, statuses = run(faster)
    assert set(statuses.values()) == {"cached"}
