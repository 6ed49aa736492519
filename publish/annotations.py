"""`align2 annotate push`: an annotation folder published as a versioned dataset, by the same
targets, versions and content hash as a curated release. The release holds the scored items
as one Parquet file (images embedded; `align2 reward train --annotations REPO` reads it), the
same scores in the seed authors' formats under `seed/`, every annotator's own file, the
agreement report and the criteria, and a card."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import datasets

from align2.builders.recipe import SEMVER
from align2.cards.annotations_card import AnnotationCardInputs, render_annotations_card
from align2.cards.hub_licenses import HUB_LICENSES
from align2.data.output import write_json, write_parquet
from align2.errors import Align2Error
from align2.publish.release import FIRST_VERSION, ReleaseResult, content_hash, release_file
from align2.publish.targets import RELEASE_FILE, HubTarget, LocalHub, bump_patch
from align2.reward.annotate import AGREEMENT_FILE, ANSWERS_FILE, QUESTIONS_FILE, export
from align2.reward.annotation_files import (
    ANNOTATIONS_FOLDER,
    CRITERIA_FILE,
    ORIGINS_FILE,
    read_annotator,
)
from align2.reward.annotations import parse_items

ITEM_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "kind": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "candidates": datasets.Sequence(datasets.Value("string")),
        "scores": datasets.Sequence(datasets.Value("float32")),
        "labels": datasets.Sequence(datasets.Value("string")),
        "annotators": datasets.Value("int32"),
    }
)


def push_annotations(
    folder: Path,
    target: LocalHub | HubTarget,
    name: str,
    *,
    version: str | None = None,
    license: str = "other",
) -> ReleaseResult:
    """Publish `folder`'s annotations as dataset `name` on `target`, unless its latest
    version holds the same content."""
    folder = Path(folder)
    if version is not None and not SEMVER.fullmatch(version):
        raise Align2Error(f"version {version!r} is not X.Y.Z")
    if license not in HUB_LICENSES:
        raise Align2Error(f"{license!r} is not a license identifier the Hub reads (mit, ...)")
    with target.lock(name), tempfile.TemporaryDirectory(prefix=".annotations-") as tmp:
        release = Path(tmp) / "release"
        report = export(folder, release / "seed")
        rows = _items(folder, release / "seed")
        if not rows:
            raise Align2Error(f"{folder}: no item has been scored yet; nothing to publish")
        data = write_parquet(
            datasets.Dataset.from_list(rows, features=ITEM_FEATURES), Path(tmp) / "items.parquet"
        )
        seed = {n: release / "seed" / n for n in (QUESTIONS_FILE, ANSWERS_FILE)}
        digest = content_hash({"data": data, **seed})
        latest = target.latest(name)
        if latest is not None and latest.content_hash == digest:
            same = f"nothing to publish: v{latest.version} has the same content hash"
            return ReleaseResult("", latest.version, digest, published=False, message=same)
        new_version = version or (bump_patch(latest.version) if latest else FIRST_VERSION)
        data_file = release_file("data", digest)
        (release / data_file).parent.mkdir(parents=True)
        data.rename(release / data_file)
        (release / "seed" / AGREEMENT_FILE).rename(release / AGREEMENT_FILE)
        shutil.copytree(folder / ANNOTATIONS_FOLDER, release / "annotators")
        criteria = (folder / CRITERIA_FILE).read_text(encoding="utf-8")
        (release / CRITERIA_FILE).write_text(criteria, encoding="utf-8")
        write_json({"version": new_version, "content_hash": digest}, release / RELEASE_FILE)
        card = AnnotationCardInputs(
            repo_id=target.repo_id(name),
            version=new_version,
            content_hash=digest,
            name=name,
            report=report,
            criteria=criteria,
            data_file=data_file,
            rows=len(rows),
            license=license,
        )
        (release / "README.md").write_text(render_annotations_card(card), encoding="utf-8")
        location = target.publish(name, release, new_version, digest)
    return ReleaseResult(
        location, new_version, digest, True, f"published v{new_version} to {location}"
    )


def _items(folder: Path, seed: Path) -> list[dict]:
    """The exported seed files read back as generic items (the reader `align2 reward train`
    uses), each with its image's bytes, its candidates' origins and its annotator count."""
    origins = {
        record["id"]: record["origins"]
        for record in map(json.loads, (folder / ORIGINS_FILE).read_text("utf-8").splitlines())
    }
    counts: dict[str, int] = {}
    for path in sorted((folder / ANNOTATIONS_FOLDER).glob("*.jsonl")):
        for item, record in read_annotator(path).items():
            counts[item] = counts.get(item, 0) + (not record.get("skipped"))
    rows = []
    for file in (QUESTIONS_FILE, ANSWERS_FILE):
        for record in json.loads((seed / file).read_text(encoding="utf-8")):
            for item in parse_items(record):
                rows.append(
                    {
                        "id": item.id,
                        "image": {"bytes": (seed / "images" / item.image).read_bytes()},
                        "kind": item.kind,
                        "prompt": item.prompt,
                        "candidates": item.candidates,
                        "scores": item.scores,
                        "labels": origins.get(item.id),
                        "annotators": counts.get(item.id, 0),
                    }
                )
    return rows
