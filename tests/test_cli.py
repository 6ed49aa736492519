"""The real `align2` command in a subprocess: exit codes and exact error text."""

import json

import pyarrow.parquet as pq
from helpers import run_align2 as run

from align2.builders.llm_styler import LLMStyler, LLMStylerConfig


def test_version():
    """The version the command prints is the installed package's, from one place."""
    from importlib.metadata import version

    import align2

    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"align2 {align2.__version__}\n" == f"align2 {version('align2')}\n"


def test_demo_pool_then_validate(tmp_path):
    result = run(
        "demo", "pool", "--split", "test", "--size", "30", "--seed", "1", "--out", tmp_path / "pool"
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 30 rows" in result.stdout
    pool = tmp_path / "pool"
    (
        pool / "images" / f"{json.loads((pool / 'llava_pool.json').read_text())[0]['id']}.png"
    ).unlink()

    result = run(
        "validate",
        "--llava-json",
        pool / "llava_pool.json",
        "--image-folder",
        pool / "images",
        "--report",
        tmp_path / "report.json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["total"] == 30 and report["valid"] == 29
    assert report["reasons"] == {"image_missing": 1}
    assert "quarantined: image_missing" in result.stdout
    quarantined = (tmp_path / "report.quarantine.jsonl").read_text().splitlines()
    assert json.loads(quarantined[0])["reason"] == "image_missing"

    strict = run(
        "validate",
        "--llava-json",
        pool / "llava_pool.json",
        "--image-folder",
        pool / "images",
        "--report",
        tmp_path / "r2.json",
        "--strict",
    )
    assert strict.returncode == 1


def test_malformed_json_exits_2_with_a_clear_message(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "a"}\n{"id": "b"}]', encoding="utf-8")
    result = run(
        "validate", "--llava-json", bad, "--image-folder", tmp_path, "--report", tmp_path / "r.json"
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {bad}: malformed JSON at line 2, column 1")
    assert "Traceback" not in result.stderr


def test_bad_option_value_names_it(tmp_path):
    result = run("demo", "pool", "--out", tmp_path, "--defect-rate", "1.5")
    assert result.returncode == 2
    assert "defect_rate must be in [0, 1], got 1.5" in result.stderr


def test_a_bad_centring_step_is_named(tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text("[]")
    result = run(
        "reward", "train", "--kind", "answer", "--annotations", answers, "--out", tmp_path / "rm",
        "--center-rewards-from", "half:0.5",
    )  # fmt: skip
    assert result.returncode == 2
    assert "'half:0.5' is not STEP:COEFFICIENT" in result.stderr


def test_demo_annotations_reward_train_and_eval(tmp_path):
    result = run(
        "demo", "annotations", "--split", "test", "--size", "12", "--out", tmp_path / "ann"
    )
    assert result.returncode == 0, result.stderr
    answers = tmp_path / "ann" / "answers.json"
    result = run(
        "reward",
        "train",
        "--kind",
        "answer",
        "--annotations",
        answers,
        "--backbone",
        "tiny-text",
        "--max-steps",
        "3",
        "--batch-size",
        "8",
        "--curriculum",
        "fact:",
        "--center-rewards",
        "0.05",
        "--center-rewards-from",
        "2:0.5",
        "--eval-annotations",
        answers,
        "--out",
        tmp_path / "rm",
    )
    assert result.returncode == 0, result.stderr
    assert "saved answer reward model" in result.stdout
    training = json.loads((tmp_path / "rm" / "align2_reward.json").read_text())["training"]
    assert training["curriculum"] == ["fact:"]
    assert training["center_rewards_schedule"] == [[2, 0.5]]
    assert (tmp_path / "rm" / "model.safetensors").is_file()
    assert (tmp_path / "rm" / "eval.json").is_file()

    result = run(
        "reward",
        "eval",
        "--model",
        tmp_path / "rm",
        "--annotations",
        answers,
        "--out",
        tmp_path / "eval.json",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["overall"]["pairs"] == sum(s["pairs"] for s in metrics["per_subset"].values())
    assert set(metrics["per_kind"]) == {"answer"}


def test_curate_then_rewrite(tmp_path, small_pool, tiny_models, tiny_lm):
    out = tmp_path / "curated"
    args = ["--llava-json", small_pool / "llava_pool.json", "--image-folder", small_pool / "images"]
    models = ["--question-model", tiny_models[0], "--answer-model", tiny_models[1]]
    truth = small_pool / "truth.jsonl"
    result = run("curate", *args, *models, "--out", out, "--truth", truth, "--style-model", tiny_lm)
    assert result.returncode == 0, result.stderr
    ledger = json.loads((out / "ledger.json").read_text())
    assert ledger["total"] == 60
    scored = pq.read_table(next((out / "scored").glob("*.parquet")))
    styler = LLMStyler(LLMStylerConfig(model=tiny_lm))
    styles = styler({"conversations": scored.column("conversations").to_pylist()})["style"]
    assert scored.column("style").to_pylist() == styles  # the LLM's labels, not the rules'
    assert json.loads((out / "quality.json").read_text())["kept"] == ledger["kept"]
    result = run("rewrite", "--input", out, "--model", tiny_lm, "--max-new-tokens", "6",
                 "--out", tmp_path / "rewritten")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "rewritten" / "rewrite_report.json").read_text())
    assert report["rows"] == ledger["kept"]
    # The curation's answer model guards the rewrites without being named again.
    assert json.loads((out / "models.json").read_text())["answer_model"] == str(tiny_models[1])
    assert report["answer_reward"]["model"] == str(tiny_models[1])
    assert report["inner_llm_nll"]["all_answers"]["turns"] > 0
    # Which precision generated, and why (asked for, the hardware, or a cached measurement).
    assert isinstance(report["precision"]["bf16"], bool) and report["precision"]["reason"]


def test_curate_names_a_bad_policy(tmp_path, small_pool):
    result = run(
        "curate", "--llava-json", small_pool / "llava_pool.json", "--image-folder", small_pool,
        "--out", tmp_path, "--policy", "best", "--question-model", "x", "--answer-model", "y",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--policy: Input should be 'align2', 'budget', 'threshold'" in result.stderr
    # The recipe's checks, word for word: a share above 1 is refused before any work.
    result = run(
        "curate", "--llava-json", small_pool / "llava_pool.json", "--image-folder", small_pool,
        "--out", tmp_path, "--policy", "budget", "--ratio", "1.5",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--ratio: Input should be less than or equal to 1 (got 1.5)" in result.stderr


def test_bad_sources_are_one_line_errors(tmp_path, small_pool, tiny_models):
    models = ["--question-model", tiny_models[0], "--answer-model", tiny_models[1]]
    both = run(
        "curate", "--llava-json", small_pool / "llava_pool.json", "--image-folder", small_pool,
        "--dataset", "org/name", "--out", tmp_path / "a", *models,
    )  # fmt: skip
    assert (both.returncode, both.stderr.strip()) == (
        2,
        "error: give exactly one of --llava-json or --dataset (got llava, dataset)",
    )
    missing = run("curate", "--dataset", tmp_path / "nowhere", "--out", tmp_path / "b", *models)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert missing.stderr.startswith(f"error: cannot open dataset '{tmp_path / 'nowhere'}'")
    nothing_valid = run(
        "curate", "--llava-json", small_pool / "llava_pool.json", "--image-folder", tmp_path,
        "--out", tmp_path / "c", *models,
    )  # fmt: skip
    assert nothing_valid.returncode == 2
    assert "error: no valid rows to curate: all 60 input rows were quarantined" in (
        nothing_valid.stderr
    )
