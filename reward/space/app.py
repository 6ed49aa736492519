"""align2's scoring app as a Hugging Face Space: the tasks in `tasks/`, the annotator and the
sync repo from the Space's variables (ALIGN2_ANNOTATOR, ALIGN2_SYNC_REPO; ALIGN2_SYNC_EVERY
seconds between commits)."""

import os
from pathlib import Path

from align2.reward.annotation_app import main

if __name__ == "__main__":
    here = Path(__file__).parent
    args = [str(here / "tasks"), "--annotator", os.environ.get("ALIGN2_ANNOTATOR", "space")]
    args += ["--host", os.environ.get("ALIGN2_HOST", "0.0.0.0")]
    args += ["--port", os.environ.get("PORT", "7860")]
    if os.environ.get("ALIGN2_SYNC_REPO"):
        args += ["--sync-to", os.environ["ALIGN2_SYNC_REPO"]]
        args += ["--sync-every", os.environ.get("ALIGN2_SYNC_EVERY", "60")]
    main(args)
