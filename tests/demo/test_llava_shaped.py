"""The real job's shape: a LLaVA-Instruct-shaped pool (ids shared by an image's rows, long
multi-turn answers, one of 3,000 words) through `align2 validate` and `align2 curate`, from
the combined file, the three type files and a `datasets` folder of the same rows."""

import json
from collections import Counter
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from helpers import run_align2

from align2.demo.llava_shaped import LlavaShapedConfig, build_llava_shaped, write_llava_shaped

ROWS = 1000
KEPT = 200


def run(*args):
    result = run_align2(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("llava-shaped")
    config = LlavaShapedConfig(rows=ROWS, seed=2, image_size=(64, 48), long_answer_words=3000)
    rows = build_llava_shaped(config, root / "images")
    combined = write_llava_shaped(rows, root / "combined", split_by_type=False)
    by_type = write_llava_shaped(rows, root / "by-type", split_by_type=True)
    return root, rows, combined, by_type


def test_the_pool_has_the_real_shape(pool):
    _, rows, combined, by_type = pool
    assert len(rows) == ROWS
    per_image = Counter(r["id"] for r in rows)
    assert 1.85 < ROWS / len(per_image) < 2.05  # LLaVA-Instruct-158k: ~1.94 rows per image
    kinds = Counter(r["type"] for r in rows)
    assert abs(kinds["complex_reasoning"] / ROWS - 77 / 158) < 0.01
    assert "type" not in json.loads(combined[0].read_text())[0]  # as LLaVA ships it
    assert sum(len(json.loads(p.read_text())) for p in by_type) == ROWS
    longest = max(len(r["conversations"][1]["value"].split()) for r in rows)
    assert longest == 3000


def _saved_as_a_dataset(rows, images: Path, folder: Path) -> Path:
    """The same rows as a Hub-style dataset: `Image()` bytes and chat `messages`."""
    role = {"human": "user", "gpt": "assistant"}
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "messages": datasets.List(
                {"role": datasets.Value("string"), "content": datasets.Value("string")}
            ),
        }
    )
    data = {
        "id": [r["id"] for r in rows],
        "image": [{"bytes": (images / r["image"]).read_bytes(), "path": None} for r in rows],
        "messages": [
            [{"role": role[t["from"]], "content": t["value"]} for t in r["conversations"]]
            for r in rows
        ],
    }
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(folder))
    return folder


def test_validate_quarantines_nothing(pool, tmp_path):
    root, _, combined, _ = pool
    report = tmp_path / "report.json"
    run(
        "validate",
        "--llava-json",
        combined[0],
        "--image-folder",
        root / "images",
        "--report",
        report,
    )
    result = json.loads(report.read_text())
    assert (result["total"], result["valid"], result["quarantined"]) == (ROWS, ROWS, 0)
    assert result["repeated_ids"] == ROWS - len({r["id"] for r in pool[1]})


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    """Tiny-vlm reward models narrower than the default (what is tested is the path: three
    curations of 1,000 long rows at the default width take minutes on 2 cores)."""
    from align2.models.backbones import build_backbone

    root = tmp_path_factory.mktemp("small-models")
    folders = []
    for seed, name in enumerate(("question", "answer")):
        backbone = build_backbone(
            "tiny-vlm", seed=seed, hidden_size=32, intermediate_size=64, num_hidden_layers=1
        )
        backbone.model.save_pretrained(root / name)
        backbone.tokenizer.save_pretrained(root / name)
        folders.append(str(root / name))
    return folders


def _curate(out, tiny_models, *source_args):
    models = ["--question-model", tiny_models[0], "--answer-model", tiny_models[1]]
    run("curate", *source_args, "--out", out, *models, "--policy", "top-k", "--k", KEPT)
    ledger = json.loads((out / "ledger.json").read_text())
    assert ledger["total"] == ROWS and ledger["quarantined"] == {}
    assert ledger["kept"] == KEPT
    return pq.read_table(out / "scored").to_pandas()


def test_curate_reads_every_shape_of_the_pool(pool, tmp_path, small_models):
    tiny_models = small_models
    root, rows, combined, by_type = pool
    images = ["--image-folder", root / "images"]
    one_file = _curate(tmp_path / "one", tiny_models, "--llava-json", combined[0], *images)
    type_args = [arg for path in by_type for arg in ("--llava-json", path)]
    three = _curate(tmp_path / "three", tiny_models, *type_args, *images)
    folder = _saved_as_a_dataset(rows, root / "images", tmp_path / "saved")
    hub_style = _curate(tmp_path / "dataset", tiny_models, "--dataset", folder, "--split", "train")

    # Every row keeps its own key; the source's id is kept beside it.
    for scored in (one_file, three, hub_style):
        assert scored["id"].is_unique and len(scored) == ROWS
        assert sorted(scored["source_id"]) == sorted(r["id"] for r in rows)
    # Types: from each file's name, unknown in the combined file (LLaVA ships it untyped).
    assert Counter(three["type"]) == Counter(r["type"] for r in rows)
    assert set(one_file["type"]) == {"unknown"}
    # The 3,000-word answer is cut to the tiny model's context, and only it.
    cut = one_file[one_file["truncated_tokens"] > 0]
    assert len(cut) == 1 and cut.iloc[0]["truncated_tokens"] > 900
    # The same rows from a file and from a dataset score the same.
    by_key = one_file.set_index("id")["answer_score"]
    assert (hub_style.set_index("id")["answer_score"] - by_key).abs().max() < 1e-5
