"""The scoring app in a real browser: Debian's chromium driven by Playwright, the app served
by its own Python (gradio needs pillow < 13; `make app-env` makes it). Two items scored with
the keyboard, a reload resumes, hostile candidates render as text, and the export trains a
reward model."""

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import run_align2
from hub_server import FakeHub

from align2.reward.annotate import export, prepare
from align2.reward.annotation_files import ORIGINS_FILE, TASKS_FILE, annotator_file, read_tasks

APP_PYTHON = Path(__file__).parents[2] / ".venv-app" / "bin" / "python"
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = "<b>bold</b><script>window.hostile = 1</script>"

pytestmark = pytest.mark.skipif(
    not os.environ.get("CI") and not (APP_PYTHON.exists() and CHROMIUM.exists()),
    reason="the browser test needs `make app-env` and Debian's chromium (.ci/run installs both)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def folder(tmp_path, small_pool):
    rows = json.loads((small_pool / "llava_pool.json").read_text())[:3]
    images = [(small_pool / "images" / r["image"]).read_bytes() for r in rows]
    out = tmp_path / "tasks"
    prepare(rows, images, out, seed=1)
    tasks = read_tasks(out)
    origins = [json.loads(line) for line in (out / ORIGINS_FILE).read_text().splitlines()]
    # Two hostile candidates in the first item: shown as text, the long one scrolled.
    tasks[0]["candidates"] = tasks[0]["candidates"][:5] + [HOSTILE, " ".join(["word"] * 5000)]
    origins[0]["origins"] = origins[0]["origins"][:5] + ["hostile", "long"]
    for name, records in ((TASKS_FILE, tasks), (ORIGINS_FILE, origins)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    return out


def launch(command: list[str], env: dict | None = None, cwd=None):
    """Start an app process on a free port (given as `--port`, or as PORT in `env` as a
    Space gives it) and wait until it serves; (url, process)."""
    port = free_port()
    process = subprocess.Popen(
        command + ([] if env else ["--port", str(port)]),
        env={**os.environ, **(env or {}), "PORT": str(port)},
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return url, process
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"the app exited: {process.stdout.read()}")
            time.sleep(0.5)
    process.kill()
    pytest.fail("the app did not start within 90 s")


@pytest.fixture
def app(folder):
    module = [str(APP_PYTHON), "-m", "align2.reward.annotation_app"]
    url, process = launch([*module, str(folder), "--annotator", "alice"])
    yield url
    process.kill()
    process.wait()


def wait_progress(page, done: int):
    page.wait_for_function(
        f"document.querySelector('#progress')?.innerText?.startsWith('{done} of')", timeout=60000
    )


def score_with_keys(page, moves: dict[str, int]):
    page.locator("#progress").click()  # focus the page, not a text box
    for key, steps in moves.items():
        page.keyboard.press(key)
        for _ in range(abs(steps)):
            page.keyboard.press("ArrowRight" if steps > 0 else "ArrowLeft")
    page.keyboard.press("Enter")


def test_score_two_items_with_the_keyboard_reload_export_and_train(tmp_path, folder, app):
    from playwright.sync_api import sync_playwright

    tasks = read_tasks(folder)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.goto(app)
        wait_progress(page, 0)
        assert f"0 of {len(tasks)}" in page.inner_text("#progress")
        assert "Scoring criteria" in page.inner_text("body")
        # The hostile candidate shows its characters; its script never ran. The long one
        # scrolls inside its box.
        boxes = page.locator("textarea")
        values = [boxes.nth(i).input_value() for i in range(boxes.count())]
        assert HOSTILE in values
        assert page.evaluate("window.hostile") is None
        long_box = boxes.nth(values.index(" ".join(["word"] * 5000)))
        assert long_box.evaluate("el => el.scrollHeight > el.clientHeight")
        page.screenshot(path=str(tmp_path / "first-item.png"), full_page=True)
        score_with_keys(page, {"1": 4, "2": -2})  # 0.5 + 4 steps, 0.5 - 2 steps
        wait_progress(page, 1)
        score_with_keys(page, {"2": 10})
        wait_progress(page, 2)
        page.reload()  # a new page load resumes at the first item not yet saved
        wait_progress(page, 2)
        shown = page.locator("#question textarea").input_value()
        assert tasks[2]["kind"] in shown
        page.screenshot(path=str(tmp_path / "after-reload.png"), full_page=True)
        browser.close()
    assert (tmp_path / "first-item.png").stat().st_size > 0
    saves = [json.loads(line) for line in annotator_file(folder, "alice").read_text().splitlines()]
    assert [s["id"] for s in saves] == [tasks[0]["id"], tasks[1]["id"]]
    assert saves[0]["scores"][:2] == [0.7, 0.4] and set(saves[0]["scores"][2:]) == {0.5}
    assert saves[1]["scores"][1] == 1.0
    out = tmp_path / "export"
    export(folder, out)
    kind = tasks[0]["kind"]
    result = run_align2(
        "reward", "train", "--kind", kind, "--annotations", out / f"{kind}s.json",
        "--out", tmp_path / "model", "--max-steps", 2, "--batch-size", 4, "--warmup-steps", 0,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "model.safetensors").is_file()


VENDORED = """
import sys
sys.path.insert(0, sys.argv[1])
import align2.reward.annotation_app as app
print(app.__file__)
"""


def test_the_space_folder_serves_the_app_and_syncs_the_scores(tmp_path, folder):
    from playwright.sync_api import sync_playwright

    space = tmp_path / "space"
    made = run_align2("annotate", "space", folder, "--out", space)
    assert made.returncode == 0, made.stderr
    metadata = (space / "README.md").read_text().split("---")[1]
    assert "sdk: gradio" in metadata and "app_file: app.py" in metadata
    assert (space / "tasks" / TASKS_FILE).read_bytes() == (folder / TASKS_FILE).read_bytes()
    assert not list(space.rglob(ORIGINS_FILE))  # which candidate is the original stays hidden
    found = subprocess.run([str(APP_PYTHON), "-c", VENDORED, str(space)], capture_output=True)
    assert Path(found.stdout.decode().strip()).is_relative_to(space), found.stderr
    token, repo = "hf_spaceSecretToken0123456789", "align2-org/space-scores"
    with FakeHub(token) as hub:
        env = {"ALIGN2_ANNOTATOR": "bob", "ALIGN2_HOST": "127.0.0.1", "ALIGN2_SYNC_REPO": repo}
        env |= {"ALIGN2_SYNC_EVERY": "2", "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": token}
        env |= {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}
        url, process = launch([str(APP_PYTHON), str(space / "app.py")], env, cwd=tmp_path)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 1600})
                page.goto(url)
                wait_progress(page, 0)
                score_with_keys(page, {"1": 2})
                wait_progress(page, 1)
                browser.close()
            deadline = time.monotonic() + 60
            synced = None
            while time.monotonic() < deadline and synced is None:
                main = hub.repos.get(repo) and hub.repos[repo].branches["main"]
                synced = main and hub.repos[repo].commits[main].get("annotations/bob.jsonl")
                time.sleep(0.5)
        finally:
            process.kill()
            process.wait()
    assert synced is not None, "the scores never reached the Hub"
    save = json.loads(synced.decode().splitlines()[0])
    assert save["id"] == read_tasks(folder)[0]["id"] and save["scores"][0] == 0.6
    assert (space / "tasks" / "annotations" / "bob.jsonl").is_file()


CLIENT = """
import json, sys
from gradio_client import Client
client = Client(sys.argv[1], verbose=False)
scores = [0.25, 0.75, 0.5, 0.5, 0.5, 0.5, 0.5]
first = client.predict(*scores, api_name="/save")
second = client.predict(*scores, api_name="/flag")
print(json.dumps([first[0], second[0]]))  # outputs: the state aside, progress first
"""


def test_scores_posted_through_gradio_client(folder, app):
    """The API level: gradio_client posts two saves (one flagged), one session, in order."""
    result = subprocess.run(
        [str(APP_PYTHON), "-c", CLIENT, app], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    progress = json.loads(result.stdout.strip().splitlines()[-1])
    tasks = read_tasks(folder)
    assert progress[0].startswith(f"**1 of {len(tasks)}**")
    assert progress[1].startswith(f"**2 of {len(tasks)}**")
    saves = [json.loads(line) for line in annotator_file(folder, "alice").read_text().splitlines()]
    assert [s["id"] for s in saves] == [tasks[0]["id"], tasks[1]["id"]]
    k = len(tasks[0]["candidates"])
    assert saves[0]["scores"] == [0.25, 0.75, 0.5, 0.5, 0.5, 0.5, 0.5][:k]
    assert [s["flagged"] for s in saves] == [False, True]
