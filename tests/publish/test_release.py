"""Recipes and releases on the real path: a local hub of git repositories, cards rendered and
validated, `datasets.load_dataset` on the published folder, idempotent rebuilds, and a build
killed mid-way that leaves the previous version untouched."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import yaml
from helpers import build_locally, release_recipe
from huggingface_hub import DatasetCard

from align2.builders.recipe import load_recipe
from align2.errors import Align2Error
from align2.publish.targets import LocalHub, git

HERE = Path(__file__).parent


_build = build_locally


def _files(repo: Path) -> dict:
    return {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}


def test_bad_recipes_fail_before_any_work_naming_the_field(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: x\nsource: {demo_pool: {}}\nselection: {policy: best}\nbudgte: 3\n")
    with pytest.raises(Align2Error) as err:
        load_recipe(path)
    message = str(err.value)
    assert "selection.policy: Input should be 'align2', 'budget', 'threshold'" in message
    assert "(got 'best')" in message
    assert "budgte: Extra inputs are not permitted" in message
    path.write_text("name: x\nsource: {}\n")
    with pytest.raises(Align2Error, match="give exactly one of `demo_pool`, `llava` or `dataset`"):
        load_recipe(path)
    path.write_text("name: x\nsource: {demo_pool: {}}\ncapabilities: {scores: s, model: m}\n")
    with pytest.raises(Align2Error, match="capabilities: Value error, give exactly one of"):
        load_recipe(path)


def test_a_recipes_capability_folder_is_relative_to_the_recipe(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: x\nsource: {demo_pool: {}}\ncapabilities: {scores: mmssr}\n")
    recipe = load_recipe(path)
    assert recipe.capabilities.scores == tmp_path.resolve() / "mmssr"
    assert recipe.as_written()["capabilities"]["scores"] == "mmssr"  # as the card shows it


def test_release_loads_validates_and_a_rebuild_publishes_nothing(tmp_path, tiny_models, tiny_lm):
    recipe = release_recipe(tmp_path, tiny_models, tiny_lm)
    first = _build(recipe, tmp_path)
    assert first.published and first.version == "0.1.0"
    repo = Path(first.location)
    assert git("tag", "--list", cwd=repo) == "v0.1.0"
    curated = datasets.load_dataset(str(repo), split="train")
    assert curated[0]["image"].size == (64, 64)  # images embedded and decoded
    scored = datasets.load_dataset(str(repo), "scored", split="train")
    ledger = yaml.safe_load((repo / "ledger.json").read_text())
    assert ledger["total"] == 30 == len(scored)
    assert ledger["kept"] + sum(ledger["dropped"].values()) == 30 == ledger["total"]
    assert len(curated) == ledger["kept"]
    card_text = (repo / "README.md").read_text()
    card = DatasetCard(card_text)
    assert card.data.license == "mit"
    assert [c["config_name"] for c in card.data.configs] == ["default", "scored"]
    assert "<script>" not in card_text and "&lt;script&gt;" in card_text
    assert first.content_hash in card_text and (repo / "assets" / "scores.png").is_file()
    # The trade-off curve: a plot, and a table that shows quality.json's figures.
    tradeoff = json.loads((repo / "quality.json").read_text())["tradeoff"]
    assert (repo / "assets" / "tradeoff.png").is_file()
    at_30 = [curve[3] for curve in tradeoff["policies"].values()]
    row = "| 30% |" + "".join(f" {p['kept']}, {p['defect_rate']:.4f} |" for p in at_30)
    assert row in card_text

    second = _build(recipe, tmp_path)
    assert not second.published and second.content_hash == first.content_hash
    assert "same content hash" in second.message
    assert git("tag", "--list", cwd=repo) == "v0.1.0"
    assert len(git("log", "--oneline", cwd=repo).splitlines()) == 1


def test_a_new_release_bumps_the_version_and_old_ones_check_out(tmp_path, tiny_models, tiny_lm):
    first = _build(release_recipe(tmp_path, tiny_models, tiny_lm), tmp_path)
    selection = {"policy": "align2", "question_ratio": 0.8, "answer_ratio": 0.8}
    second = _build(release_recipe(tmp_path, tiny_models, tiny_lm, selection=selection), tmp_path)
    assert (first.version, second.version) == ("0.1.0", "0.1.1")
    assert "rows added" in (Path(second.location) / "README.md").read_text()
    old = LocalHub(tmp_path / "hub").checkout("tiny-release", "v0.1.0", tmp_path / "old")
    old_rows = datasets.load_dataset(str(old), split="train")
    new_rows = datasets.load_dataset(second.location, split="train")
    assert len(old_rows) < len(new_rows)


@pytest.mark.slow
def test_a_killed_build_leaves_the_previous_version(tmp_path, tiny_models, tiny_lm):
    first = _build(release_recipe(tmp_path, tiny_models, tiny_lm), tmp_path)
    repo = Path(first.location)
    before = git("rev-parse", "HEAD", cwd=repo)
    files = _files(repo)
    selection = {"policy": "random", "ratio": 0.5}
    recipe = release_recipe(tmp_path, tiny_models, tiny_lm, selection=selection)
    child = subprocess.Popen(
        [sys.executable, "-m", "align2", "build", str(recipe)],
        cwd=tmp_path,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = tmp_path / "build" / "align2-work" / "tiny-release" / "curation" / "ledger.json"
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        assert child.poll() is None, "the build ended before it could be interrupted"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert git("rev-parse", "HEAD", cwd=repo) == before
    assert git("tag", "--list", cwd=repo) == "v0.1.0"
    assert _files(repo) == files
    assert len(datasets.load_dataset(str(repo), split="train")) > 0


def test_a_release_from_llava_files_and_one_from_a_dataset_name_their_sources(
    tmp_path, tiny_models, tiny_lm
):
    import hashlib

    from align2.demo.llava_shaped import (
        LlavaShapedConfig,
        build_llava_shaped,
        write_llava_shaped,
    )

    rows = build_llava_shaped(
        LlavaShapedConfig(rows=40, seed=1, image_size=(32, 24)), tmp_path / "images"
    )
    files = write_llava_shaped(rows, tmp_path / "pool", split_by_type=True)
    llava = {"llava_json": [str(p) for p in files], "image_folder": str(tmp_path / "images")}
    recipe = release_recipe(
        tmp_path, tiny_models, tiny_lm, source={"llava": llava}, rewrite=None, name="from-files"
    )
    repo = Path(_build(recipe, tmp_path).location)
    card = (repo / "README.md").read_text()
    for path in files:
        assert f"`{path.name}` (sha256 `{hashlib.sha256(path.read_bytes()).hexdigest()}`)" in card
    repeated = len(rows) - len({r["id"] for r in rows})
    assert f"{repeated} rows shared their source id with an earlier row" in card
    assert str(tmp_path) not in card  # models and sources by name and digest, not by path
    assert 'load_dataset("hub/from-files"' in card
    curated = datasets.load_dataset(str(repo), split="train")
    assert set(curated["source_id"]) <= {r["id"] for r in rows}
    assert len(set(curated["id"])) == len(curated)

    saved = tmp_path / "saved"
    datasets.load_dataset(str(repo), "scored", split="train").save_to_disk(str(saved))
    dataset = {"path": "saved", "columns": {"id": "source_id"}}
    recipe = release_recipe(
        tmp_path, tiny_models, tiny_lm, source={"dataset": dataset}, rewrite=None, name="hf"
    )
    with pytest.raises(Align2Error, match=r"^no image column: the dataset has id, source_id, "):
        _build(recipe, tmp_path)  # `scored` holds no images: a one-line error, no traceback
    text = yaml.safe_load(recipe.read_text())
    text["source"]["dataset"]["colums"] = text["source"]["dataset"].pop("columns")
    recipe.write_text(yaml.safe_dump(text))
    with pytest.raises(Align2Error, match=r"source.dataset.colums: Unexpected keyword"):
        load_recipe(recipe)


def test_a_build_with_a_float_tiff_exports_it(tmp_path, tiny_models, tiny_lm):
    import numpy as np
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i in range(6):
        pixels = np.linspace(0, 0.001 * (i + 1), 64 * 64, dtype=np.float32).reshape(64, 64)
        Image.fromarray(pixels, mode="F").save(images / f"scan-{i}.tiff")
        turns = [
            {"from": "human", "value": f"<image>\nWhat does scan {i} show?"},
            {"from": "gpt", "value": f"Gradient {i}."},
        ]
        rows.append({"id": f"scan-{i}", "image": f"scan-{i}.tiff", "conversations": turns})
    (tmp_path / "pool.json").write_text(json.dumps(rows))
    source = {"llava": {"llava_json": "pool.json", "image_folder": "images"}}
    recipe = release_recipe(
        tmp_path, tiny_models, tiny_lm, source=source, rewrite=None, name="scans",
        selection={"policy": "top-k", "k": 4}, output={"formats": ["llava_json", "messages"]},
    )  # fmt: skip
    result = _build(recipe, tmp_path)
    exported = Path(result.location) / "exports" / "llava_json"
    records = json.loads((exported / "llava.json").read_text())
    assert len(records) == 4
    assert all((exported / "images" / r["image"]).suffix == ".png" for r in records)


def test_a_budget_build_reads_mmssr_capability_files(tmp_path, tiny_models, tiny_lm):
    from align2.builders.capabilities import CAPABILITIES, COLUMNS, snake

    scores = tmp_path / "mmssr"
    scores.mkdir()
    for n, capability in enumerate(CAPABILITIES):  # by position in the 30-row source
        lines = [{"idx": i, "pred_response": str((i + n) % 6)} for i in range(30)]
        (scores / f"{snake(capability)}.jsonl").write_text("\n".join(map(json.dumps, lines)))
    recipe = release_recipe(
        tmp_path, tiny_models, tiny_lm, rewrite=None,
        selection={"policy": "budget", "ratio": 0.5, "threshold": 0},
        capabilities={"scores": "mmssr"},  # relative to the recipe
    )  # fmt: skip
    release = _build(recipe, tmp_path)
    repo = Path(release.location)
    selection = json.loads((repo / "selection.json").read_text())
    assert selection["policy"]["name"] == "BudgetSelection"
    assert selection["kept"] + selection["shortfall"] == selection["budget"]
    assert len(selection["capabilities"]["per_file"]) == 14
    scored = datasets.load_dataset(str(repo), "scored", split="train")
    assert set(COLUMNS) <= set(scored.column_names)
    card = (repo / "README.md").read_text()
    assert f"kept {selection['kept']}" in card and "mmSSR-format score files" in card
