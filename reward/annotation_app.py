"""The scoring app: a Gradio page over an annotation folder (`align2 annotate serve`).

It shows the image, the question and the candidates (as plain text: a candidate holding
HTML shows its characters, and a long one scrolls), a 0-1 slider per candidate in steps of
0.05, the criteria, and progress. Keyboard first: 1-7 picks a candidate's slider, the
arrows move it by a step, Enter saves and moves on. Every save is one appended line
(`annotation_files.save`), so a killed app loses at most the item on screen, and a reload
resumes at the first item this annotator has not saved. It needs only gradio and the
standard library, so it also runs where align2's other dependencies are not installed.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import gradio as gr

from align2.reward.annotation_files import (
    CRITERIA_FILE,
    MAX_CANDIDATES,
    annotator_file,
    read_annotator,
    read_tasks,
    save,
)
from align2.reward.annotation_sync import SYNC_EVERY_S, start_sync

START = 0.5  # where every slider starts
KEYS = """
() => {
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type !== "range")) {
      return;  // typing in a box
    }
    if (event.key >= "1" && event.key <= "LAST") {
      const slider = document.querySelector(`#candidate-${event.key} input[type=range]`);
      if (slider) { slider.focus(); event.preventDefault(); }
    } else if (event.key === "Enter") {
      document.querySelector("#save")?.click();
      event.preventDefault();
    }
  });
}
""".replace("LAST", str(MAX_CANDIDATES))


def build_app(folder: Path, annotator: str) -> gr.Blocks:
    folder = Path(folder)
    tasks = read_tasks(folder)
    criteria = (folder / CRITERIA_FILE).read_text(encoding="utf-8")
    saves_path = annotator_file(folder, annotator)

    def next_item() -> int:
        done = read_annotator(saves_path) if saves_path.exists() else {}
        return next((i for i, t in enumerate(tasks) if t["id"] not in done), len(tasks))

    def show(index: int):
        done = len(read_annotator(saves_path)) if saves_path.exists() else 0
        progress = f"**{done} of {len(tasks)}** items scored by {annotator}"
        if index >= len(tasks):
            hidden = [gr.update(visible=False)] * (2 * MAX_CANDIDATES)
            return [index, progress + ": all done.", None, ""] + hidden
        return [index, progress, *_item_view(folder, tasks[index])]

    def record(index: int, *values, flagged=False, skipped=False):
        if index < len(tasks):
            task = tasks[index]
            scores = list(values[: len(task["candidates"])])
            save(folder, annotator, task["id"], scores, flagged=flagged, skipped=skipped)
        return show(next_item())

    with gr.Blocks(title="align2 annotation") as app:
        index = gr.State(0)
        progress = gr.Markdown(elem_id="progress")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", interactive=False, label="image", height=320)
                gr.Markdown(criteria)
            with gr.Column(scale=2):
                question = gr.Textbox(label="item", interactive=False, elem_id="question")
                fields = []
                for k in range(1, MAX_CANDIDATES + 1):
                    text = gr.Textbox(label=f"candidate {k}", interactive=False, max_lines=6)
                    score = gr.Slider(0, 1, value=START, step=0.05, label=f"score {k}",
                                      elem_id=f"candidate-{k}")  # fmt: skip
                    fields += [text, score]
                with gr.Row():
                    buttons = {
                        "save": (gr.Button("Save and next (Enter)", elem_id="save"), {}),
                        "skip": (gr.Button("Skip"), {"skipped": True}),
                        "flag": (gr.Button("Flag and next"), {"flagged": True}),
                    }
        outputs = [index, progress, image, question, *fields]
        # Named endpoints: scores can be posted with gradio_client as well as the page.
        for name, (button, flags) in buttons.items():
            handler = functools.partial(record, **flags)
            button.click(handler, [index, *fields[1::2]], outputs, api_name=name)
        app.load(lambda: show(next_item()), None, outputs)
    return app


def _item_view(folder: Path, task: dict) -> list:
    """The image, the item line and every candidate's text and slider for one task."""
    question = task["question"] or "(score the candidate questions themselves)"
    updates = []
    for k in range(MAX_CANDIDATES):
        shown = k < len(task["candidates"])
        text = task["candidates"][k] if shown else ""
        updates.append(gr.update(value=text, visible=shown))
        updates.append(gr.update(value=START, visible=shown))
    image = str(folder / "images" / task["image"])
    return [image, f"{task['kind']}: {question}", *updates]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score an annotation folder in the browser.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--annotator", required=True)
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--sync-to", metavar="ORG/NAME", help="a Hub dataset repo to commit to")
    parser.add_argument("--sync-every", type=float, default=SYNC_EVERY_S, metavar="SECONDS")
    args = parser.parse_args(argv)
    app = build_app(args.folder, args.annotator)
    sync = None
    if args.sync_to:  # a Space's disk does not outlive it: commit the saves as they come
        sync = start_sync(args.folder, args.sync_to, every_s=args.sync_every)
    try:
        app.launch(
            server_name=args.host,
            server_port=args.port,
            js=KEYS,
            allowed_paths=[str(args.folder.resolve())],  # the images
            show_error=True,
        )
    finally:
        if sync is not None:
            sync.stop()  # the scheduler's exit hook still commits what is left


if __name__ == "__main__":
    main()
