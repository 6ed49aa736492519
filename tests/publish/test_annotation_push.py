"""`align2 annotate push`: annotations published as versioned datasets (a local hub, and the
loopback Hub), loaded back with `datasets`, trained on by `align2 reward train`; and the Space
mode's sync of annotators' files through huggingface_hub's CommitScheduler."""

import json
import os
import subprocess
import sys

import datasets
import pytest
from helpers import run_align2
from hub_server import FakeHub

from align2.reward.annotate import export, prepare
from align2.reward.annotation_files import CRITERIA_FILE, read_tasks, save

TOKEN = "hf_loopbackSecretToken0123456789"
REPO = "align2-org/preferences"


def prepared(small_pool, folder, size: int):
    """An annotation folder for the pool's first `size` rows (as `annotate prepare` makes)."""
    rows = json.loads((small_pool / "llava_pool.json").read_text())[:size]
    images = [(small_pool / "images" / r["image"]).read_bytes() for r in rows]
    prepare(rows, images, folder, seed=0)
    return folder


@pytest.fixture
def scored_folder(tmp_path, small_pool):
    folder = prepared(small_pool, tmp_path / "tasks", 4)
    for n, task in enumerate(read_tasks(folder)):
        ramp = [round(0.1 * i, 2) for i in range(len(task["candidates"]))]
        save(folder, "alice", task["id"], ramp)
        if n % 2 == 0:  # bob scores every other item, a little higher
            save(folder, "bob", task["id"], [round(s + 0.05, 2) for s in ramp])
    return folder


def test_push_publishes_versions_that_load_back_and_train(tmp_path, scored_folder):
    criteria = scored_folder / CRITERIA_FILE
    criteria.write_text(criteria.read_text() + "\n<script>alert(1)</script> | a pipe\n")
    push = ["annotate", "push", scored_folder, "local:hub", "--name", "prefs"]
    first = run_align2(*push, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "published v0.1.0" in first.stdout
    repo = tmp_path / "hub" / "prefs"
    items = datasets.load_dataset(str(repo), split="train")
    report = export(scored_folder, tmp_path / "export")
    assert len(items) == sum(report["exported"].values())
    by_id = {row["id"]: row for row in items}
    answers = json.loads((tmp_path / "export" / "answers.json").read_text())
    for record in answers:  # the same means as the seed-format export
        scores = by_id[record["id"]]["scores"]
        assert scores == pytest.approx(record["conversations"][1]["score"], abs=1e-6)
    first_task = read_tasks(scored_folder)[0]
    row = by_id[first_task["id"]]
    assert row["candidates"] == first_task["candidates"] and row["annotators"] == 2
    assert row["labels"].count("original") == 1 and row["image"].size == (64, 64)
    card = (repo / "README.md").read_text()
    assert f"| {report['krippendorff_alpha']} |" in card
    assert "&lt;script&gt;" in card and "<script>" not in card
    assert (repo / "annotators" / "bob.jsonl").is_file()
    assert (repo / "seed" / "answers.json").read_text() == (
        tmp_path / "export" / "answers.json"
    ).read_text()

    again = run_align2(*push, cwd=tmp_path)
    assert again.returncode == 0 and "nothing to publish" in again.stdout
    save(scored_folder, "carol", first_task["id"], [1.0] * len(first_task["candidates"]))
    second = run_align2(*push, cwd=tmp_path)
    assert "published v0.1.1" in second.stdout, second.stderr
    old = run_align2(
        "checkout", "prefs", "v0.1.0", "--hub", tmp_path / "hub", "--out", tmp_path / "old"
    )
    assert old.returncode == 0, old.stderr
    assert len(datasets.load_dataset(str(tmp_path / "old"), split="train")) == len(items)
    newer = {r["id"]: r for r in datasets.load_dataset(str(repo), split="train")}
    assert newer[first_task["id"]]["annotators"] == 3

    for kind in ("question", "answer"):
        trained = run_align2(
            "reward", "train", "--kind", kind, "--annotations", repo,
            "--out", tmp_path / f"rm-{kind}", "--max-steps", 2, "--batch-size", 4,
            "--warmup-steps", 0,
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr
        assert (tmp_path / f"rm-{kind}" / "model.safetensors").is_file()


def test_push_refuses_what_it_cannot_publish(tmp_path, small_pool):
    empty = prepared(small_pool, tmp_path / "empty", 2)
    nothing = run_align2("annotate", "push", empty, "local:hub", cwd=tmp_path)
    assert nothing.returncode == 2 and "no item has been scored" in nothing.stderr
    bad = run_align2("annotate", "push", empty, "local:hub", "--version", "1.0", cwd=tmp_path)
    assert bad.returncode == 2 and "is not X.Y.Z" in bad.stderr
    assert not (tmp_path / "hub" / "empty").exists()


def _child(code: str, *args, hub: FakeHub, cwd) -> subprocess.CompletedProcess:
    """Python in a child process pointed at the loopback Hub (huggingface_hub reads
    HF_ENDPOINT once, at import)."""
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": TOKEN}
    for offline in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # the loopback is our network
        env.pop(offline, None)
    result = subprocess.run(
        [sys.executable, *([] if code is None else ["-c", code]), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


LOAD = """
import json, sys, datasets
items = datasets.load_dataset(sys.argv[1], revision=sys.argv[2], split="train")
print(json.dumps({"ids": sorted(items["id"]), "annotators": sorted(items["annotators"])}))
"""

SYNC = """
import json, sys, time
from align2.reward.annotation_files import save
from align2.reward.annotation_sync import start_sync
folder, repo, item = sys.argv[1:]
scheduler = start_sync(folder, repo, every_s=600)  # then commits only when told, here
while getattr(scheduler, "last_future", None) is None:  # its own first push, at start
    time.sleep(0.05)
scheduler.last_future.result()  # (of the empty folder) must not take the save below
save(folder, "alice", item, [0.5, 1.0])
first = scheduler.trigger().result()
save(folder, "alice", item, [1.0, 0.0])
second = scheduler.trigger().result()
unchanged = scheduler.trigger().result()
scheduler.stop()
print(json.dumps([first.oid, second.oid, unchanged]))
"""


@pytest.mark.slow
def test_push_to_the_hub_and_the_space_sync(tmp_path, scored_folder):
    with FakeHub(TOKEN) as hub:
        push = [sys.executable, "-m", "align2", "annotate", "push", scored_folder, f"hub:{REPO}"]
        pushed = _child(None, *push[1:], hub=hub, cwd=tmp_path)
        assert f"published v0.1.0 to {hub.endpoint}/datasets/{REPO}/tree/v0.1.0" in pushed.stdout
        loaded = json.loads(_child(LOAD, REPO, "v0.1.0", hub=hub, cwd=tmp_path).stdout)
        assert loaded["ids"] == sorted(t["id"] for t in read_tasks(scored_folder))
        assert set(loaded["annotators"]) == {1, 2}

        space = tmp_path / "space-tasks"
        space.mkdir()
        sync = "align2-org/space-annotations"
        oids = json.loads(_child(SYNC, space, sync, "row:answer", hub=hub, cwd=tmp_path).stdout)
        first, second, unchanged = oids
        assert first != second and unchanged is None  # nothing new: no empty commit
        repo = hub.repos[sync]
        assert repo.branches["main"] == second and repo.private
        lines = repo.commits[second]["annotations/alice.jsonl"].decode().splitlines()
        assert [json.loads(line)["scores"] for line in lines] == [[0.5, 1.0], [1.0, 0.0]]
        assert len(repo.commits[first]["annotations/alice.jsonl"].decode().splitlines()) == 1
        for files in repo.commits.values():
            assert all(TOKEN.encode() not in content for content in files.values())
