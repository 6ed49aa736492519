"""Inputs a careless user gives: each is a one-line error naming the bad value and the fix,
exit code 2, before any expensive work (nothing is curated or written). The real `main`,
in this process (each case would cost a subprocess's imports)."""

import sys

import pytest
import yaml
from helpers import release_recipe

from align2.cli import main


def _run(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["align2", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.fixture
def pool_args(small_pool):
    return ["--llava-json", small_pool / "llava_pool.json", "--image-folder", small_pool / "images"]


CURATE_CASES = {
    "budget without a size": (
        ["--policy", "budget"],
        "error: policy 'budget': give exactly one of `budget` (a row count) or `ratio` (a share)",
    ),
    "top-k without k": (
        ["--policy", "top-k"],
        "error: policy 'top-k' needs --k (recipe: selection.k)",
    ),
    # Shares are checked by the recipe's own model: the words a recipe would get.
    "a zero ratio": (
        ["--question-ratio", "0"],
        "error: --question-ratio: Input should be greater than 0 (got 0.0)",
    ),
    "a ratio over one": (
        ["--question-ratio", "1.5"],
        "error: --question-ratio: Input should be less than or equal to 1 (got 1.5)",
    ),
    "a NaN ratio": (
        ["--answer-ratio", "nan"],
        "error: --answer-ratio: Input should be less than or equal to 1 (got nan)",
    ),
    # Every option is a recipe field, checked as the recipe checks it.
    "a zero batch size": (
        ["--batch-size", "0"],
        "error: --batch-size: Input should be greater than or equal to 1 (got 0)",
    ),
    "capability files with another policy": (
        ["--capability-scores", "."],
        "error: capability scores are read by the `budget` policy only",
    ),
}


@pytest.mark.parametrize("case", CURATE_CASES)
def test_bad_curate_options(monkeypatch, capsys, tmp_path, pool_args, tiny_models, case):
    extra, message = CURATE_CASES[case]
    models = ["--question-model", tiny_models[0], "--answer-model", tiny_models[1]]
    code, err = _run(monkeypatch, capsys, "curate", *pool_args, "--out", tmp_path / "o",
                     *models, *extra)  # fmt: skip
    assert (code, err.strip()) == (2, message)
    assert not (tmp_path / "o").exists()  # nothing was written


def test_bad_reward_models(monkeypatch, capsys, tmp_path, pool_args, tiny_models):
    (tmp_path / "empty").mkdir()
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    cases = {
        tmp_path / "nowhere": f"error: question model '{tmp_path / 'nowhere'}' is neither a "
        "folder here nor a Hub id (org/name)",
        tmp_path / "empty": f"error: question model folder {tmp_path / 'empty'} has no "
        "config.json: not a saved model",
        pickled: f"error: question model folder {pickled} has no .safetensors weights (align2 "
        "loads safetensors only; convert a .bin checkpoint first)",
    }
    for model, message in cases.items():
        code, err = _run(monkeypatch, capsys, "curate", *pool_args, "--out", tmp_path / "o",
                         "--question-model", model, "--answer-model", tiny_models[1])  # fmt: skip
        assert (code, err.strip()) == (2, message)
    assert not (tmp_path / "o").exists()


def test_bad_pools(monkeypatch, capsys, tmp_path, small_pool, tiny_models):
    models = ["--question-model", tiny_models[0], "--answer-model", tiny_models[1]]
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    code, err = _run(monkeypatch, capsys, "curate", "--llava-json", empty, "--image-folder",
                     small_pool / "images", "--out", tmp_path / "o", *models)  # fmt: skip
    assert (code, err.strip()) == (2, "error: the source holds no rows: llava:empty.json")
    pool = small_pool / "llava_pool.json"
    code, err = _run(monkeypatch, capsys, "curate", "--llava-json", pool, "--image-folder",
                     tmp_path / "nope", "--out", tmp_path / "o2", *models)  # fmt: skip
    assert (code, err.strip()) == (
        2,
        f"error: image folder {tmp_path / 'nope'} does not exist (llava:llava_pool.json)",
    )


def test_bad_builds(monkeypatch, capsys, tmp_path, tiny_models, tiny_lm):
    monkeypatch.chdir(tmp_path)  # where a build would write hub/ and build/
    code, err = _run(monkeypatch, capsys, "build", tmp_path)
    assert (code, err.strip()) == (
        2,
        f"error: recipe {tmp_path} is a folder; pass the recipe's YAML file",
    )
    recipe = release_recipe(tmp_path, tiny_models, tiny_lm, rewrite=None)
    code, err = _run(monkeypatch, capsys, "build", recipe, "--version", "1.2")
    assert code == 2 and "version: String should match pattern" in err and "(got '1.2')" in err
    recipe.write_text(yaml.safe_dump({**yaml.safe_load(recipe.read_text()), "name": "n" * 300}))
    code, err = _run(monkeypatch, capsys, "build", recipe)
    assert code == 2 and "name: String should have at most 96 characters" in err
    assert not (tmp_path / "hub").exists() and not (tmp_path / "build").exists()
