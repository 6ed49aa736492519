"""A release is a transaction: a build killed at any phase, two builds at once, a repository
with changes of its own or a folder align2 did not make, each checked on the real path (git,
`datasets.load_dataset`, processes killed with SIGKILL)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from helpers import build_locally, release_recipe

from align2.errors import Align2Error
from align2.publish.targets import LocalHub, git

WIDER = {"policy": "random", "ratio": 0.5}


def _build(recipe_path, tmp_path, **kwargs):
    # The CLI's work folder, so that what a killed `align2 build` left is seen.
    return build_locally(recipe_path, tmp_path, tmp_path / "build" / "align2-work", **kwargs)


def _cli_build(recipe_path, tmp_path, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "align2", "build", str(recipe_path)],
        cwd=tmp_path,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group
    )


def _ids(repo: Path) -> list[str]:
    loaded = datasets.load_dataset(str(repo), split="train", download_mode="force_redownload")
    return sorted(loaded["id"])


def _consistent(repo: Path) -> dict:
    """Clean tree, every tag on main, main's release.json naming the newest tag."""
    assert git("status", "--porcelain", "--untracked-files=all", cwd=repo) == ""
    tags = set(git("tag", "--list", cwd=repo).split())
    assert tags == set(git("tag", "--merged", "main", cwd=repo).split())
    release = json.loads(git("show", "main:release.json", cwd=repo))
    newest = git("tag", "--list", "v*", "--sort=-v:refname", cwd=repo).split()[0]
    assert newest == f"v{release['version']}"
    return release


@pytest.fixture
def published(tmp_path, tiny_models, tiny_lm):
    first = _build(release_recipe(tmp_path, tiny_models, tiny_lm, rewrite=None), tmp_path)
    return Path(first.location)


@pytest.mark.slow
@pytest.mark.parametrize(
    "phase", ["release-folder", "swap", "swap-card", "swap-cleanup", "commit", "tag"]
)
def test_a_build_killed_at_any_phase_loses_nothing(
    tmp_path, tiny_models, tiny_lm, published, phase
):
    repo, old_ids = published, _ids(published)
    recipe = release_recipe(tmp_path, tiny_models, tiny_lm, selection=WIDER, rewrite=None)
    killed = _cli_build(recipe, tmp_path, ALIGN2_TEST_KILL_AT=phase)
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    served = _ids(repo)  # one whole version, whichever it is, loads at once

    again = _build(recipe, tmp_path)  # takes the dead build's lock over and mends its leftovers
    assert again.published == (phase not in ("tag",))  # killed before its tag: tagged now
    assert _consistent(repo)["version"] == "0.1.1"
    new_ids = _ids(repo)
    assert new_ids != old_ids
    # Killed before the new card was in place, the old version is served; after, the new one.
    assert served == (new_ids if phase in ("swap-cleanup", "commit", "tag") else old_ids)
    work = tmp_path / "build" / "align2-work"
    assert not list((work / "tiny-release").glob(".release-*"))
    assert not list(work.glob("*.lock")) and not list((tmp_path / "hub").glob("*.lock"))


def test_a_repository_with_changes_of_its_own_is_refused_before_any_work(
    tmp_path, tiny_models, tiny_lm, published
):
    with (published / "README.md").open("a") as card:
        card.write("a note of mine\n")
    ledger = tmp_path / "build" / "align2-work" / "tiny-release" / "curation" / "ledger.json"
    curated_at = ledger.stat().st_mtime_ns
    recipe = release_recipe(tmp_path, tiny_models, tiny_lm, selection=WIDER, rewrite=None)
    with pytest.raises(Align2Error, match=r"has changes that are not in a release \(README.md\)"):
        _build(recipe, tmp_path)
    assert ledger.stat().st_mtime_ns == curated_at  # refused before any curation
    assert git("tag", "--list", cwd=published) == "v0.1.0"
    assert "a note of mine" in (published / "README.md").read_text()  # untouched


def test_a_tag_off_main_names_no_release_and_an_older_version_is_refused(
    tmp_path, tiny_models, tiny_lm, published
):
    git("tag", "v9.9.9", "main", cwd=published)  # as if pushed by hand; then main moves on
    git("tag", "-d", "v9.9.9", cwd=published)
    orphan = git("commit-tree", "-m", "not a release", "main^{tree}", cwd=published)
    git("tag", "v9.9.9", orphan, cwd=published)
    assert LocalHub(tmp_path / "hub").latest("tiny-release").version == "0.1.0"
    recipe = release_recipe(tmp_path, tiny_models, tiny_lm, selection=WIDER, rewrite=None)
    with pytest.raises(Align2Error, match=r"v0.0.9 is not newer than the latest release v0.1.0"):
        _build(recipe, tmp_path, version="0.0.9")
    assert _build(recipe, tmp_path).version == "0.1.1"


def test_a_folder_align2_did_not_make_is_refused_and_left_alone(tmp_path, tiny_models, tiny_lm):
    mine = tmp_path / "hub" / "tiny-release"
    mine.mkdir(parents=True)
    (mine / "README.md").write_text("my own notes\n")
    recipe = release_recipe(tmp_path, tiny_models, tiny_lm, rewrite=None)
    with pytest.raises(Align2Error, match=r"is not an align2 hub repository \(no .git\)"):
        _build(recipe, tmp_path)
    assert [p.name for p in mine.iterdir()] == ["README.md"]


def test_a_second_build_is_refused_while_one_holds_the_repository(
    tmp_path, tiny_models, tiny_lm, published
):
    recipe = release_recipe(tmp_path, tiny_models, tiny_lm, selection=WIDER, rewrite=None)
    with LocalHub(tmp_path / "hub").lock("tiny-release"):  # this process is the other build
        second = _cli_build(recipe, tmp_path)
        _, err = second.communicate(timeout=300)
    assert second.returncode == 2
    assert f"is in use by another align2 build (pid {os.getpid()}" in err
    assert len(err.strip().splitlines()) == 1
    assert git("tag", "--list", cwd=published) == "v0.1.0"
    assert _build(recipe, tmp_path).version == "0.1.1"  # once it is free
    assert _consistent(published)["version"] == "0.1.1"
