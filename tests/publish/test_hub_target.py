"""`align2 build --target hub:ORG/NAME` with the unmodified `huggingface_hub` client against a
loopback Hub (tests/hub_server.py), then `datasets.load_dataset(ORG/NAME, revision=...)`
through the same endpoint. The builds and the load run in child processes because
`huggingface_hub` and `datasets` read HF_ENDPOINT once, at import."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import release_recipe
from hub_server import FakeHub

TOKEN = "hf_loopbackSecretToken0123456789"
REPO = "align2-org/tiny-release"

LOAD = """
import json, sys, datasets
repo, revision = sys.argv[1], sys.argv[2]
curated = datasets.load_dataset(repo, revision=revision, split="train")
scored = datasets.load_dataset(repo, "scored", revision=revision, split="train")
print(json.dumps({"ids": list(curated["id"]), "image": list(curated[0]["image"].size),
                  "scored": len(scored), "columns": scored.column_names}))
"""


def _run(args, tmp_path, hub: FakeHub) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": TOKEN}
    env["TOKENIZERS_PARALLELISM"] = "false"
    for offline in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # the loopback is our network
        env.pop(offline, None)
    result = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _build(tmp_path, hub, recipe):
    return _run(["-m", "align2", "build", str(recipe), "--target", f"hub:{REPO}"], tmp_path, hub)


def _load(tmp_path, hub, revision) -> dict:
    return json.loads(_run(["-c", LOAD, REPO, revision], tmp_path, hub).stdout.splitlines()[-1])


@pytest.mark.slow
def test_hub_target_publishes_versions_that_load_back_by_revision(tmp_path, tiny_models, tiny_lm):
    recipe = release_recipe(tmp_path, tiny_models, tiny_lm)
    wider = {"policy": "align2", "question_ratio": 0.8, "answer_ratio": 0.8}
    with FakeHub(TOKEN) as hub:
        first = _build(tmp_path, hub, recipe)
        assert f"published v0.1.0 to {hub.endpoint}/datasets/{REPO}/tree/v0.1.0" in first.stdout
        repo = hub.repos[REPO]
        v1_commit = repo.tags["v0.1.0"]
        assert repo.branches["main"] == v1_commit
        release = json.loads(repo.commits[v1_commit]["release.json"])
        assert release["version"] == "0.1.0" and len(release["content_hash"]) == 64
        writes = {(m, p.rsplit("/", 1)[0], ok) for m, p, ok in hub.requests if m == "POST"}
        assert ("POST", "/api/repos", True) in writes  # create
        assert ("POST", f"/api/datasets/{REPO}/preupload", True) in writes
        assert ("POST", f"/api/datasets/{REPO}/commit", True) in writes
        assert ("POST", f"/api/datasets/{REPO}/tag", True) in writes
        commits = len(repo.commits)

        unchanged = _build(tmp_path, hub, recipe)  # same content hash: nothing is published
        assert "nothing to publish" in unchanged.stdout
        assert len(repo.commits) == commits and list(repo.tags) == ["v0.1.0"]

        recipe = release_recipe(tmp_path, tiny_models, tiny_lm, selection=wider)
        second = _build(tmp_path, hub, recipe)
        assert "published v0.1.1" in second.stdout
        v2_files = repo.commits[repo.tags["v0.1.1"]]
        v1_data = {p for p in repo.commits[v1_commit] if p.startswith("data/")}
        assert v1_data and not v1_data & set(v2_files)  # the release replaced the old data
        assert "rows added" in v2_files["README.md"].decode()  # changelog read the Hub's ids

        old, new = _load(tmp_path, hub, "v0.1.0"), _load(tmp_path, hub, "v0.1.1")
        ledger = json.loads(repo.commits[v1_commit]["ledger.json"])
        assert len(old["ids"]) == ledger["kept"] and old["scored"] == ledger["total"] == 30
        assert len(new["ids"]) > len(old["ids"]) and old["image"] == [64, 64]
        assert "image" not in old["columns"] and "decision" in old["columns"]
        assert any(p.startswith(f"/datasets/{REPO}/resolve/") for _, p, _ in hub.requests)

        # The token went to the server and nowhere else: not in output, files or the release.
        outputs = [first, unchanged, second]
        assert all(TOKEN not in r.stdout + r.stderr for r in outputs)
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path
        for files in repo.commits.values():
            assert all(TOKEN.encode() not in content for content in files.values())


PUBLISH_TWICE = """
import sys
from pathlib import Path
from align2.publish.targets import HubTarget
from align2.errors import Align2Error
release = Path(sys.argv[1])
target = HubTarget("org/name")
target.publish("name", release, "1.0.0", "a" * 64)
assert target.latest("name").content_hash == "a" * 64
try:
    target.publish("name", release, "1.0.0", "a" * 64)
except Align2Error as error:
    print(error)
"""


def test_hub_target_needs_a_token_and_refuses_an_existing_version(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    (release / "release.json").write_text(
        json.dumps({"version": "1.0.0", "content_hash": "a" * 64})
    )
    with FakeHub(TOKEN) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint}
        env.pop("HF_HUB_OFFLINE")
        command = [sys.executable, "-c", PUBLISH_TWICE, str(release)]
        no_token = subprocess.run(command, env=env, capture_output=True, text=True)
        assert no_token.returncode != 0 and "401" in no_token.stderr
        assert hub.repos == {}
        with_token = subprocess.run(
            command, env={**env, "HF_TOKEN": TOKEN}, capture_output=True, text=True
        )
        assert with_token.returncode == 0, with_token.stderr[-2000:]
        assert "org/name already has version v1.0.0; pass a newer --version" in with_token.stdout
        assert list(hub.repos["org/name"].tags) == ["v1.0.0"]


@pytest.mark.slow
def test_a_hub_dataset_is_a_build_source_pinned_by_its_commit(tmp_path, tiny_models, tiny_lm):
    with FakeHub(TOKEN) as hub:
        _build(tmp_path, hub, release_recipe(tmp_path, tiny_models, tiny_lm, rewrite=None))
        commit = hub.repos[REPO].tags["v0.1.0"]
        source = {"dataset": {"path": REPO, "revision": "v0.1.0"}, "license": "mit"}
        recipe = release_recipe(
            tmp_path, tiny_models, tiny_lm, name="from-hub", source=source, rewrite=None,
            target="local:hub", selection={"policy": "top-k", "k": 3},
        )  # fmt: skip
        result = _run(["-m", "align2", "build", str(recipe)], tmp_path, hub)
    assert "published v0.1.0" in result.stdout
    card = (tmp_path / "hub" / "from-hub" / "README.md").read_text()
    assert f"`{REPO}` (revision `{commit}`)" in card
    ledger = json.loads((tmp_path / "hub" / "from-hub" / "ledger.json").read_text())
    assert ledger["kept"] == 3 and ledger["quarantined"] == {}


PUBLISH = """
import json, sys
from pathlib import Path
from align2.publish.targets import HubTarget
from align2.errors import Align2Error
release, version = Path(sys.argv[1]), sys.argv[2]
target = HubTarget("org/name")
try:
    with target.lock("name"):
        print(target.publish("name", release, version, json.loads(
            (release / "release.json").read_text())["content_hash"]))
except Align2Error as error:
    print(f"error: {error}")
    sys.exit(2)
"""


def _release(tmp_path, version: str) -> Path:
    release = tmp_path / f"release-{version}"
    (release / "data").mkdir(parents=True)
    (release / "data" / f"train-{version}.parquet").write_bytes(version.encode() * 100)
    info = {"version": version, "content_hash": version.replace(".", "") * 8}
    (release / "release.json").write_text(json.dumps(info))
    return release


def _publish(hub, tmp_path, version, faults=None):
    hub.faults = {action: list(queue) for action, queue in (faults or {}).items()}
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": TOKEN}
    env.pop("HF_HUB_OFFLINE")
    command = [sys.executable, "-c", PUBLISH, str(_release(tmp_path, version)), version]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _released(repo, versions) -> None:
    """Every version tagged once, each on a release commit of main's history, main the last."""
    assert sorted(repo.tags) == [f"v{v}" for v in versions]
    for version in versions:
        assert json.loads(repo.commits[repo.tags[f"v{version}"]]["release.json"])["version"] == (
            version
        )
    assert repo.branches["main"] == repo.tags[f"v{versions[-1]}"]


@pytest.mark.slow
def test_a_failing_hub_gets_each_release_once(tmp_path):
    with FakeHub(TOKEN) as hub:
        # A 5xx and a dropped connection at every step, and a slow commit: retried.
        faults = {
            "create": ["500"],
            "preupload": ["500", "drop"],
            "commit": ["500", "drop", "slow"],
            "tag": ["500", "drop"],
        }
        first = _publish(hub, tmp_path, "1.0.0", faults)
        assert first.returncode == 0, first.stderr[-3000:]
        repo = hub.repos["org/name"]
        _released(repo, ["1.0.0"])
        commits = len(repo.commits)

        # The commit is made but its answer is lost: found on main, not made twice.
        second = _publish(hub, tmp_path, "1.0.1", {"commit": ["drop-after"]})
        assert second.returncode == 0, second.stderr[-3000:]
        assert len(repo.commits) == commits + 1
        _released(repo, ["1.0.0", "1.0.1"])

        # The tag never gets through: one line, exit 2; the next build tags that commit first.
        third = _publish(hub, tmp_path, "1.0.2", {"tag": ["500"] * 8})
        assert third.returncode == 2, third.stderr[-3000:]
        assert third.stdout.strip().startswith("error: org/name: tagging v1.0.2 failed 4 times")
        assert "v1.0.2" not in repo.tags and len(repo.commits) == commits + 2
        fourth = _publish(hub, tmp_path, "1.0.3")
        assert fourth.returncode == 0, fourth.stderr[-3000:]
        _released(repo, ["1.0.0", "1.0.1", "1.0.2", "1.0.3"])
