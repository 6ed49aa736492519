"""Human preference annotation: prepare is deterministic, saves survive a killed writer,
agreement is Krippendorff's alpha computed by hand, and an export trains a reward model."""

import json

import numpy as np
import pytest
from helpers import run_align2

from align2.errors import Align2Error
from align2.reward.annotate import agreement, export
from align2.reward.annotation_files import (
    ANNOTATIONS_FOLDER,
    ORIGINS_FILE,
    TASKS_FILE,
    read_annotator,
    read_tasks,
    save,
)


def prepare(small_pool, out, *extra):
    result = run_align2(
        "annotate", "prepare", "--llava-json", small_pool / "llava_pool.json",
        "--image-folder", small_pool / "images", "--out", out, *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_prepare_is_deterministic_and_hides_the_origins(tmp_path, small_pool):
    first = prepare(small_pool, tmp_path / "a", "--size", 6, "--seed", 3)
    second = prepare(small_pool, tmp_path / "b", "--size", 6, "--seed", 3)
    for name in (TASKS_FILE, ORIGINS_FILE):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / "images" / "00000.png").read_bytes() == (
        second / "images" / "00000.png"
    ).read_bytes()
    tasks = read_tasks(first)
    assert len(tasks) == 12 and {t["kind"] for t in tasks} == {"question", "answer"}
    origins = [json.loads(line) for line in (first / ORIGINS_FILE).read_text().splitlines()]
    for task, origin in zip(tasks, origins, strict=True):
        assert "origins" not in task and origin["id"] == task["id"]
        assert origin["origins"].count("original") == 1 and 2 <= len(task["candidates"]) <= 7
    shown_first = [o["origins"].index("original") for o in origins]
    assert len(set(shown_first)) > 1  # the original is not always in the same place
    other = prepare(small_pool, tmp_path / "c", "--size", 6, "--seed", 4)
    assert (other / TASKS_FILE).read_bytes() != (first / TASKS_FILE).read_bytes()
    again = run_align2("annotate", "prepare", "--llava-json", small_pool / "llava_pool.json",
                       "--image-folder", small_pool / "images", "--out", first)  # fmt: skip
    assert again.returncode == 2 and "already holds annotation tasks" in again.stderr


def test_a_save_is_one_line_and_a_torn_line_is_ignored(tmp_path):
    save(tmp_path, "ann 1", "x", [0.52, 1.0])
    save(tmp_path, "ann 1", "x", [0.3, 0.7], flagged=True)  # the latest save wins
    path = tmp_path / ANNOTATIONS_FOLDER / "ann_1.jsonl"
    with open(path, "a") as f:
        f.write('{"id": "y", "sco')  # a writer killed mid-line
    latest = read_annotator(path)
    assert latest == {"x": {"id": "x", "scores": [0.3, 0.7], "flagged": True, "skipped": False}}
    save(tmp_path, "ann 1", "z", [0.52])
    assert read_annotator(path)["z"]["scores"] == [0.5]  # steps of 0.05
    with pytest.raises(Align2Error, match="between 0 and 1"):
        save(tmp_path, "ann 1", "x", [1.5])
    with pytest.raises(Align2Error, match="usable annotator name"):
        save(tmp_path, "../..", "x", [0.5])


def test_agreement_is_krippendorffs_alpha_on_a_hand_made_case():
    # Item A: both annotators score 3 candidates; item B: one annotator only (no pair);
    # item C: they disagree. In tenths: A (1,1), (2,2), (3,4); C (9,2), (1,8). Pairable
    # values n = 10. Observed disagreement D_o = (2*1 + 2*49 + 2*49) / 10 = 19.8. Expected:
    # sum v = 33, sum v^2 = 185, sum over pairs i<j (vi - vj)^2 = 10*185 - 33^2 = 761,
    # D_e = 2*761 / (10*9) = 16.911. alpha = 1 - 19.8 / 16.911 = -0.1708.
    items = [
        [[0.1, 0.2, 0.3], [0.1, 0.2, 0.4]],
        [[0.5, 0.5], None],
        [[0.9, 0.1], [0.2, 0.8]],
    ]
    report = agreement(items)
    assert report["krippendorff_alpha"] == -0.1708
    assert report["units_scored_twice"] == 5
    # A's three pairs are ordered alike, C's one pair is not: 3 of 4.
    assert (report["pair_order_agreement"], report["pairs_compared"]) == (0.75, 4)
    alike = agreement([items[0]])  # A alone: D_o = 2/6, D_e = 82/30: alpha = 72/82
    assert alike["krippendorff_alpha"] == round(72 / 82, 4)
    assert agreement([[[0.5, 0.5], None]])["krippendorff_alpha"] is None


def exported_scores(out, task):
    """An item's scores as exported, from the seed-format file of its kind."""
    records = json.loads((out / f"{task['kind']}s.json").read_text())
    record = next(r for r in records if r["id"] == task["id"])
    return record["score"] if task["kind"] == "question" else record["conversations"][1]["score"]


def test_two_annotators_export_to_files_reward_train_reads(tmp_path, small_pool):
    folder = prepare(small_pool, tmp_path / "tasks", "--size", 4)
    tasks = read_tasks(folder)
    for n, task in enumerate(tasks):
        k = len(task["candidates"])
        first = [round(0.05 * i, 2) for i in range(k)]  # on the 0.05 grid
        save(folder, "alice", task["id"], first)
        if n % 2 == 0:  # bob scores every other item, in the reverse order once
            save(folder, "bob", task["id"], first[::-1] if n == 0 else first)
    save(folder, "bob", tasks[1]["id"], [0.0] * len(tasks[1]["candidates"]), skipped=True)
    out = tmp_path / "export"
    report = export(folder, out)
    assert report["annotators"] == ["alice", "bob"] and report["resolution"] == "mean"
    kinds = [t["kind"] for t in tasks]  # a one-word answer has no item: nothing to compare
    assert report["exported"] == {"question": 4, "answer": kinds.count("answer")}
    assert -1 <= report["krippendorff_alpha"] < 1 and report["pairs_compared"] > 0
    k = len(tasks[2]["candidates"])
    assert exported_scores(out, tasks[2]) == [round(0.05 * i, 2) for i in range(k)]  # the mean
    assert len(set(exported_scores(out, tasks[0]))) == 1  # a ramp and its reverse: all equal
    assert json.loads((out / "agreement.json").read_text()) == report
    for kind, name in (("answer", "answers.json"), ("question", "questions.json")):
        result = run_align2(
            "reward", "train", "--kind", kind, "--annotations", out / name,
            "--out", tmp_path / f"{kind}-model", "--max-steps", 2, "--batch-size", 4,
            "--warmup-steps", 0,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert (tmp_path / f"{kind}-model" / "model.safetensors").is_file()


def test_generator_variants_join_the_seed_corruptions(tmp_path, small_pool, lively_lm):
    first = prepare(small_pool, tmp_path / "a", "--size", 3, "--generator", lively_lm)
    again = prepare(small_pool, tmp_path / "b", "--size", 3, "--generator", lively_lm)
    assert (first / TASKS_FILE).read_bytes() == (again / TASKS_FILE).read_bytes()  # seeded
    tasks = {t["id"]: t for t in read_tasks(first)}
    origins = [json.loads(line) for line in (first / ORIGINS_FILE).read_text().splitlines()]
    generated = 0
    for origin in origins:
        names = origin["origins"]
        mine = [n for n in names if n.startswith("generated:t=")]
        generated += len(mine)
        assert len(mine) <= 3 and len(names) == len(set(tasks[origin["id"]]["candidates"]))
        assert set(names) - set(mine) <= {"original", "shuffle", "crop", "duplicate"}
        assert "generated" not in json.dumps(tasks[origin["id"]])  # annotators never see it
    assert generated >= len(origins)  # every item got at least one variant
    plain = prepare(small_pool, tmp_path / "c", "--size", 3)
    assert "generated" not in (plain / ORIGINS_FILE).read_text()


def test_uncertain_picks_the_rows_the_model_is_least_sure_of(tmp_path, small_pool, tiny_models):
    import shutil

    from align2.reward.candidates import least_sure_rows, sureness
    from align2.reward.train import METADATA_FILE

    model = shutil.copytree(tiny_models[1], tmp_path / "answer-model")
    (model / METADATA_FILE).write_text(json.dumps({"kind": "answer"}))
    rows = json.loads((small_pool / "llava_pool.json").read_text())[:12]
    images = [(small_pool / "images" / r["image"]).read_bytes() for r in rows]
    firsts = [_first(r) for r in rows]
    values = sureness(firsts, images, model, candidates=5, seed=0)
    alone = [
        sureness([f], [i], model, candidates=5, seed=0)[0]
        for f, i in zip(firsts, images, strict=True)
    ]
    assert values == pytest.approx(alone, rel=1e-4)  # a row scores the same in a pool
    assert len(set(np.round(values[np.isfinite(values)], 6))) > 3  # rows differ
    chosen = least_sure_rows(firsts, images, model, 4, candidates=5, seed=0)
    assert max(values[chosen]) <= min(np.delete(values, chosen))
    out = prepare(small_pool, tmp_path / "u", "--size", 4, "--strategy", "uncertain",
                  "--model", model)  # fmt: skip
    assert len({t["image"] for t in read_tasks(out)}) == 4
    wrong = run_align2("annotate", "prepare", "--llava-json", small_pool / "llava_pool.json",
                       "--image-folder", small_pool / "images", "--out", tmp_path / "w",
                       "--strategy", "uncertain", "--size", 4)  # fmt: skip
    assert wrong.returncode == 2 and "needs --model" in wrong.stderr
    plain = run_align2("annotate", "prepare", "--llava-json", small_pool / "llava_pool.json",
                       "--image-folder", small_pool / "images", "--out", tmp_path / "p",
                       "--size", 4, "--model", tiny_models[1])  # fmt: skip
    assert plain.returncode == 2


def _first(row):
    question = next(t["value"] for t in row["conversations"] if t["from"] == "human")
    answer = next(t["value"] for t in row["conversations"] if t["from"] == "gpt")
    return question.replace("<image>", "").strip(), answer.strip()
