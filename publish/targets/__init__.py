"""Publishing targets: where a finished release folder goes, one commit and one tag
`vX.Y.Z` per release. Each target can say which version is the latest and with what content
hash (so an unchanged rebuild publishes nothing), and which row ids it holds (the changelog).

- `LocalHub` (`local:DIR`): a folder with one git repository per dataset in the Hub's dataset
  layout; `main`'s `release.json` names the latest release, and its annotated tag records
  the content hash too. A release is a transaction (see the class).
- `HubTarget` (`hub:ORG/NAME`): the Hugging Face Hub through `huggingface_hub`; the release is
  one `create_commit` (refused if the branch moved since we looked), then its tag (see the
  class for what happens when the network fails).
"""

from __future__ import annotations

import re
from pathlib import Path

from align2.errors import Align2Error
from align2.publish.targets.common import RELEASE_FILE, Published, bump_patch, git
from align2.publish.targets.hub import HubTarget
from align2.publish.targets.local import LocalHub

__all__ = [
    "RELEASE_FILE",
    "HubTarget",
    "LocalHub",
    "Published",
    "bump_patch",
    "git",
    "parse_target",
]


def parse_target(target: str, project_root: Path) -> LocalHub | HubTarget:
    """`local:DIR` (relative to the project) or `hub:ORG/NAME`."""
    if target.startswith("local:"):
        folder = Path(target.removeprefix("local:"))
        return LocalHub(folder if folder.is_absolute() else project_root / folder)
    if re.fullmatch(r"hub:[^/\s]+/[^/\s]+", target):
        return HubTarget(target.removeprefix("hub:"))
    raise Align2Error(f"target {target!r}: expected local:DIR or hub:ORG/NAME")
