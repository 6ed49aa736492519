"""`align2 annotate space`: a folder that runs the scoring app as a Hugging Face Space, as is.

The Space gets the template in `space/` (app.py, requirements.txt, a README with the Space's
metadata), the tasks an annotator sees (never `origins.jsonl`, which says which candidate is
the original), and a copy of the few align2 modules the app runs on: they need only gradio
and huggingface_hub, where installing align2 itself would pull its pinned pillow, which
gradio refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import align2
from align2.errors import Align2Error
from align2.reward.annotation_files import CRITERIA_FILE, TASKS_FILE, read_tasks

TEMPLATE = Path(__file__).parent / "space"
APP_MODULES = (  # what the app imports, relative to the align2 package
    "__init__.py",
    "errors.py",
    "reward/__init__.py",
    "reward/annotation_files.py",
    "reward/annotation_app.py",
    "reward/annotation_sync.py",
)


def write_space(folder: Path, out: Path) -> Path:
    """The Space folder for annotation folder `folder`, written to `out` (a new folder)."""
    folder, out = Path(folder), Path(out)
    read_tasks(folder)  # refuses a folder that holds no tasks
    if out.exists() and any(out.iterdir()):
        raise Align2Error(f"{out} is not empty; write the Space into a new folder")
    shutil.copytree(TEMPLATE, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    tasks = out / "tasks"
    tasks.mkdir()
    for name in (TASKS_FILE, CRITERIA_FILE):
        shutil.copyfile(folder / name, tasks / name)
    shutil.copytree(folder / "images", tasks / "images")
    package = Path(align2.__file__).parent
    sources = {"reward": Path(__file__).parent}  # align2.reward lives in its own folder
    for module in APP_MODULES:
        top, _, rest = module.partition("/")
        source = sources[top] / rest if rest else package / module
        target = out / "align2" / module
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return out
