"""`align2 build RECIPE`: run a recipe end to end and publish a versioned release.

Everything is rendered into a temporary folder first (data, card, plots, recipe, ledger);
only a complete release is committed. The content hash covers the data files, so the same
recipe and inputs give the same hash, and a rebuild that changes nothing publishes nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow.compute as pc
import yaml

from align2.builders.pipeline import CurationRun, curate_recipe
from align2.builders.recipe import Recipe
from align2.builders.stages import runs_table
from align2.cards.dataset_card import (
    CardInputs,
    plot_scores,
    plot_tradeoff,
    render_dataset_card,
)
from align2.data.engines import engine_named
from align2.data.exports import export
from align2.data.output import KEPT_DECISION, write_json, write_parquet
from align2.data.sources import LlavaJsonSource, Source
from align2.demo.pool import DemoPoolConfig, build_demo_pool, write_demo_pool
from align2.demo.reward_models import with_demo_models
from align2.publish.targets import RELEASE_FILE, HubTarget, LocalHub, bump_patch
from align2.publish.transaction import checkpoint, file_lock
from align2.rewrite.truth import read_image_facts, rewrite_truth_report

FIRST_VERSION = "0.1.0"
DEMO_SOURCE = "easy-vqa (PyPI), align2 demo pool"


@dataclass(frozen=True)
class ReleaseResult:
    location: str  # where it was published (a folder or a Hub URL); "" when nothing was
    version: str
    content_hash: str
    published: bool
    message: str
    summary: str = ""  # rows in, kept, dropped and quarantined by reason; each stage's time


def content_hash(files: dict[str, Path]) -> str:
    """sha256 over the data files' bytes, each under its config name, in name order."""
    digest = hashlib.sha256()
    for name, path in sorted(files.items()):
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def release_file(config: str, digest: str) -> str:
    """A data file's path in the release. The content hash is in the name and in the card's
    config patterns: `datasets` caches local folders by their card's configs (not by file
    contents, huggingface/datasets#2956), so a new release must change the patterns or
    `load_dataset(folder)` would keep serving the previous one."""
    return f"{config}/train-{digest[:12]}-00000-of-00001.parquet"


def _sources(recipe: Recipe, work: Path) -> tuple[list[Source], Path | None, str]:
    """(sources, ground truth or None, the name the card gives the source)."""
    if recipe.source.demo_pool is not None:
        demo = recipe.source.demo_pool
        pool = work / "pool"
        config = DemoPoolConfig(
            split=demo.split, size=demo.size, defect_rate=demo.defect_rate, seed=demo.seed
        )
        write_demo_pool(build_demo_pool(config), pool)
        source = LlavaJsonSource(pool / "llava_pool.json", pool / "images")
        return [source], pool / "truth.jsonl", DEMO_SOURCE
    given = recipe.source
    if given.llava is not None:
        return given.sources(), given.llava.truth, given.name or "local"
    return given.sources(), None, given.name or given.dataset.path


def _rewrite(kept: datasets.Dataset, recipe: Recipe, work: Path, answer_model: str, truth, engine):
    """The kept rows rewritten, guarded by the build's own answer reward model; with ground
    truth, the accepted rewrites judged against the images' facts."""
    from align2.models.generation import GenerationConfig
    from align2.rewrite.guards import GuardConfig
    from align2.rewrite.rewriter import RewriteConfig, rewrite_dataset

    spec = recipe.rewrite
    config = RewriteConfig(
        model=spec.model,
        revision=spec.revision,
        generation=GenerationConfig(max_new_tokens=spec.max_new_tokens, batch_size=spec.batch_size),
        guards=GuardConfig(max_reward_drop=spec.max_reward_drop),
        rewrite_questions=spec.questions,
        review=spec.review,
        seed=spec.seed,
        answer_model=answer_model,
        answer_revision=recipe.reward.answer_revision,
    )
    rewritten, report = rewrite_dataset(kept, config, work / "rewrites", engine_named(engine))
    if truth is not None:
        rows = list(rewritten.remove_columns("image"))
        report["truth"] = rewrite_truth_report(rows, read_image_facts(truth))
    return rewritten, {"model": spec.model, "report": report}


def build_release(
    recipe: Recipe,
    recipe_text: str,
    *,
    target: LocalHub | HubTarget,
    work_root: Path,
    version: str | None = None,
    command: str = "",
    engine: str = "local",
) -> ReleaseResult:
    """Run `recipe` and publish it to `target` (unless the latest version has its content);
    `engine` places the row-wise stages (curation's and the rewrite).

    One build at a time holds the work folder and the target repository: a second one is
    refused at once, as is a target that holds what no release made, before any work."""
    work = Path(work_root) / recipe.name  # kept between builds: score and generation caches
    work_lock = file_lock(Path(work_root) / f".{recipe.name}.lock", f"work folder {work}")
    with work_lock, target.lock(recipe.name):
        for stale in work.glob(".release-*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        return _build(recipe, recipe_text, target, work, version, command, engine)


def _downstream(pool, kept, evaluate, work: Path) -> dict:
    """The recipe's downstream comparison: the released rows against random subsets of the
    validated pool and the whole pool (align2.evaluate.compare)."""
    from align2.evaluate.compare import base_model, compare, settings_from

    base = base_model(evaluate.model)
    curated = {"release": kept}
    result = compare(pool, curated, base, settings_from(evaluate), work / "downstream")
    return {"model": evaluate.model, **result}


def _build(recipe, recipe_text, target, work: Path, version, command, engine) -> ReleaseResult:
    work.mkdir(parents=True, exist_ok=True)
    sources, truth, source = _sources(recipe, work)
    run = _curate(recipe, sources, truth, work, engine)
    kept, rewrite = run.curation.kept, None
    if recipe.rewrite is not None and len(kept):
        kept, rewrite = _rewrite(kept, recipe, work, run.models[1], truth, engine)
    latest = target.latest(recipe.name)
    with tempfile.TemporaryDirectory(prefix=".release-", dir=work) as tmp:
        scored = run.curation.scored.remove_columns("image")
        files = {
            "data": write_parquet(kept, Path(tmp) / "curated.parquet"),
            "scored": write_parquet(scored, Path(tmp) / "scored.parquet", embed_images=False),
        }
        digest = content_hash(files)
        if latest is not None and latest.content_hash == digest:
            same = f"nothing to publish: v{latest.version} has the same content hash"
            return ReleaseResult("", latest.version, digest, False, same, _summary(run))
        new_version = (
            version or recipe.version or (bump_patch(latest.version) if latest else FIRST_VERSION)
        )
        previous_ids = target.ids(recipe.name) if latest else None
        release = Path(tmp) / "release"
        for config, path in files.items():
            (release / config).mkdir(parents=True)
            path.rename(release / release_file(config, digest))
        write_json({"version": new_version, "content_hash": digest}, release / RELEASE_FILE)
        downstream = _write_reports(release, recipe, recipe_text, run, kept, rewrite, work)
        checkpoint("release-folder")
        _write_assets(release, recipe, run, kept, scored)
        card = CardInputs(
            repo_id=target.repo_id(recipe.name),
            version=new_version,
            content_hash=digest,
            recipe=recipe.as_written(),
            ledger=run.ledger.to_dict(),
            kept_types=kept["type"],
            kept_examples=list(kept.select(range(min(3, len(kept)))).remove_columns("image")),
            dropped_examples=_dropped_examples(scored),
            source=source,
            question_model=model_label(run.models[0], recipe.reward.question_revision),
            answer_model=model_label(run.models[1], recipe.reward.answer_revision),
            license=recipe.source.license,
            license_name=recipe.source.license_name,
            rows=len(kept),
            quality=run.quality,
            selection=run.curation.selection,
            rewrite=rewrite,
            downstream=downstream,
            changelog=_changelog(previous_ids, kept["id"], latest),
            data_files={c: release_file(c, digest) for c in files},
            command=command,
            provenance=run.provenance,
            repeated_ids=run.quarantine.repeated_ids,
            truncated_rows=_truncated_rows(scored),
        )
        (release / "README.md").write_text(render_dataset_card(card), encoding="utf-8")
        location = target.publish(recipe.name, release, new_version, digest)
    message = f"published v{new_version} to {location}"
    return ReleaseResult(location, new_version, digest, True, message, _summary(run))


def _curate(recipe, sources, truth, work: Path, engine: str) -> CurationRun:
    """The recipe's curation: validate, dedup, style, score and select."""
    demo = with_demo_models(recipe)
    return curate_recipe(demo, sources, work / "curation", truth=truth, engine=engine)


def _summary(run: CurationRun) -> str:
    return f"{run.ledger.table()}\n\n{runs_table(run.curation.runs)}"


def _write_reports(release: Path, recipe, recipe_text: str, run, kept, rewrite, work: Path):
    """The release's recipe and reports; returns the downstream comparison when one ran."""
    write_json(run.ledger.to_dict(), release / "ledger.json")
    write_json(run.curation.selection, release / "selection.json")
    if run.quality is not None:
        write_json(run.quality, release / "quality.json")
    if rewrite is not None:
        write_json(rewrite["report"], release / "rewrite_report.json")
    downstream = None
    if recipe.evaluate is not None and len(kept):
        downstream = _downstream(run.curation.scored, kept, recipe.evaluate, work)
        write_json(downstream, release / "downstream.json")
    (release / "recipe.yaml").write_text(recipe_text, encoding="utf-8")
    return downstream


def _write_assets(release: Path, recipe, run, kept, scored) -> None:
    """The exports and the card's plots."""
    export(kept, recipe.output.formats, release / "exports")
    columns = scored.select_columns(["question_score", "answer_score", "decision"])
    plot_scores(columns.to_dict(), release / "assets" / "scores.png")
    if run.quality is not None:
        plot_tradeoff(run.quality["tradeoff"], release / "assets" / "tradeoff.png")


def model_label(model: str, revision: str | None) -> str:
    """What the card says of a reward model: a Hub id with its revision, or a local folder by
    its name and weights' sha256 (never the machine's path)."""
    from align2.models.backbones import model_fingerprint

    folder = Path(model)
    if folder.is_dir():
        return f"{folder.name} (weights sha256 {model_fingerprint(folder)})"
    return f"{model} (revision {revision or 'main'})"


def _truncated_rows(scored: datasets.Dataset) -> int:
    """Scored rows with text cut to a reward model's context (duplicates were never scored)."""
    cut = scored.with_format("arrow")["truncated_tokens"]
    return int(pc.sum(pc.greater(cut, 0)).as_py() or 0)


def _dropped_examples(scored: datasets.Dataset) -> list[dict]:
    dropped = scored.filter(lambda d: d != KEPT_DECISION, input_columns="decision")
    return list(dropped.select(range(min(3, len(dropped)))))


def _changelog(previous: set[str] | None, ids: list[str], latest) -> dict | None:
    """Rows added and removed against the previous version (None for the first release)."""
    if latest is None or previous is None:
        return None
    return {
        "against": latest.version,
        "added": sorted(set(ids) - previous),
        "removed": sorted(previous - set(ids)),
    }


def recipe_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.as_written(), sort_keys=False)
