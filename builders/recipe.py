"""Recipes: one YAML file names the whole curation. Pydantic models with `extra="forbid"`, so
a misspelt key fails before any work, naming the field and what is allowed. Trust flags
(`trust_remote_code`) are not fields: a file cannot switch them on.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from align2.builders.capabilities import CapabilityConfig
from align2.builders.llm_styler import LLMStylerConfig
from align2.builders.score import ScoringConfig
from align2.builders.select import make_policy
from align2.cards.hub_licenses import HUB_LICENSES
from align2.data.sources import HFDatasetSource, LlavaJsonSource
from align2.data.validate import ValidationConfig
from align2.errors import Align2Error
from align2.evaluate.sft import SFTSettings
from align2.rewrite.guards import GuardConfig

SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class DemoPoolSource(_Strict):
    """The embedded easy-VQA pool, built on the fly (ground truth included)."""

    split: Literal["train", "test"] = "test"
    """easy-VQA's split to build the pool from."""
    size: int | None = None
    """Rows (one per image); null: the whole split."""
    defect_rate: float = Field(0.3, ge=0, le=1)
    """Share of rows given one injected defect."""
    seed: int = 0
    """Seed of the defects and conversations."""


class LlavaSource(_Strict):
    llava_json: tuple[Path, ...]
    """LLaVA .json or .jsonl files; each row's type comes from its own file's name."""
    image_folder: Path
    """The folder the rows' image paths are relative to."""
    truth: Path | None = None
    """Ground truth for the quality report (the demo pool's truth.jsonl), when there is one."""

    @field_validator("llava_json", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        return [value] if isinstance(value, (str, Path)) else value

    def sources(self) -> list[LlavaJsonSource]:
        return [LlavaJsonSource(path, self.image_folder) for path in self.llava_json]


class Source(_Strict):
    demo_pool: DemoPoolSource | None = None
    """The embedded easy-VQA demo pool (give exactly one of demo_pool, llava, dataset)."""
    llava: LlavaSource | None = None
    """LLaVA JSON files and their image folder."""
    dataset: HFDatasetSource | None = None
    """A `datasets` dataset: a Hub id, a data folder or a save_to_disk folder."""
    license: str = "other"
    """The pool's license, as a Hub license identifier (mit, apache-2.0, cc-by-4.0, ...)."""
    license_name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.-]{0,63}$")
    """The license's name when `license` is other."""
    name: str | None = None
    """A Hub-style id shown in the card's source_datasets."""

    @field_validator("license")
    @classmethod
    def _hub_license(cls, value: str) -> str:
        if value not in HUB_LICENSES:
            raise ValueError(
                f"{value[:40]!r} is not a license identifier the Hub reads (apache-2.0, mit, "
                "cc-by-4.0, ...: huggingface.co/docs/hub/repositories-licenses); for another "
                "license give `license: other` and its `license_name`"
            )
        return value

    def sources(self) -> list:
        """The readers of a `llava` or `dataset` source (the demo pool is built first)."""
        return self.llava.sources() if self.llava is not None else [self.dataset]

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("demo_pool", "llava", "dataset") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of `demo_pool`, `llava` or `dataset`"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class Validation(_Strict):
    max_image_pixels: int = ValidationConfig.max_image_pixels
    """Larger images are quarantined (`image_too_large`)."""
    unique_ids: Literal["derive", "strict"] = "derive"
    """derive: a repeated id (LLaVA's image ids) gets a key ID-1, ID-2, ...; strict: quarantined."""


class Dedup(_Strict):
    text_threshold: float | None = Field(0.9, gt=0, le=1)
    """MinHash Jaccard of word 3-grams at or above which texts are near-duplicates; null: off."""
    image_distance: int | None = Field(4, ge=0, le=32)
    """Perceptual-hash bits within which images are near-duplicates; null: off."""
    match_images: bool = True
    """A duplicate needs its image to match too; false dedups by text alone."""
    repeated_turns: bool = True
    """Drop rows that repeat one of their own question-answer turns."""


class Reward(_Strict):
    question_model: str = "demo"
    """The question reward model (folder or Hub id); demo: tiny-vlm trained on demo annotations."""
    answer_model: str = "demo"
    """The answer reward model, as above."""
    question_revision: str | None = None
    """A Hub branch, tag or commit of the question model."""
    answer_revision: str | None = None
    """A Hub branch, tag or commit of the answer model."""
    batch_size: int = Field(ScoringConfig.batch_size, ge=1)
    """Texts per forward pass when scoring."""


class Selection(_Strict):
    policy: Literal["align2", "budget", "threshold", "top-k", "random"] = "align2"
    """How rows are kept; the other fields are the policy's (null: its default)."""
    question_ratio: float | None = Field(None, gt=0, le=1)
    """align2: share of each type kept by question score (0.3)."""
    answer_ratio: float | None = Field(None, gt=0, le=1)
    """align2: share of those kept by answer score (0.3)."""
    budget: int | None = Field(None, ge=0)
    """budget, random: rows to keep."""
    ratio: float | None = Field(None, gt=0, le=1)
    """budget, random: share of the pool to keep (instead of `budget`)."""
    question_share: float | None = Field(None, gt=0, le=1)
    """budget: share of each type passing the question cut (0.8)."""
    candidate_share: float | None = Field(None, gt=0, le=1)
    """budget: share of the pool that is a candidate by answer score (0.4)."""
    threshold: float | None = None
    """budget: a capability score must exceed it."""
    min_score: float | None = None
    """threshold: the answer score a row needs."""
    k: int | None = Field(None, ge=0)
    """top-k: rows to keep."""
    seed: int | None = None
    """random: the draw's seed (0)."""

    @model_validator(mode="after")
    def _a_policy(self):
        """The policy builds from these options: its own errors, before any work."""
        make_policy(self.policy, **self.model_dump(exclude={"policy"}))
        return self


class Capabilities(_Strict):
    """mmSSR's 14 capability scores for the `budget` policy: from mmSSR's own output files
    (`scores`: a folder of `<capability>.jsonl`) or asked of a causal LM (`model`)."""

    scores: Path | None = None
    """A folder of mmSSR's `<capability>.jsonl` files."""
    model: str | None = None
    """A causal LM or VLM asked mmSSR's question per capability (folder or Hub id)."""
    revision: str | None = None
    """A Hub branch, tag or commit of the model."""
    batch_size: int = Field(CapabilityConfig.batch_size, ge=1)
    """Rows per batch when asking the model."""

    @model_validator(mode="after")
    def _one_source(self):
        if (self.scores is None) == (self.model is None):
            raise ValueError("give exactly one of `scores` (a folder) or `model`")
        if self.revision is not None and self.model is None:
            raise ValueError("`revision` is a model's: give `model` with it")
        return self


class Styler(_Strict):
    """Styles from a causal LM prompted with mmSSR's style list (see llm_styler.py)."""

    model: str
    """A causal LM that can follow the instruction (folder or Hub id; SmolLM2-135M cannot)."""
    revision: str | None = None
    """A Hub branch, tag or commit of the model."""
    batch_size: int = Field(LLMStylerConfig.batch_size, ge=1)
    """Rows per forward pass."""


class Rewrite(_Strict):
    model: str = "smollm2"
    """The inner LLM: smollm2 (embedded), a Hub id, a folder or a .gguf file."""
    revision: str | None = None
    """A Hub branch, tag or commit of the model."""
    max_new_tokens: int = Field(64, ge=1)
    """At most this many new tokens per rewrite."""
    batch_size: int = Field(8, ge=1)
    """Prompts per generation batch."""
    questions: bool = True
    """Rewrite questions too, not only answers."""
    review: bool = True
    """The LLM reviews each rewrite against its original and keeps the one it prefers."""
    seed: int = 0
    """Seed of the review's option order (and of sampling)."""
    max_reward_drop: float = Field(GuardConfig.max_reward_drop, ge=0)
    """A rewrite scoring this much below its original under the answer model is refused."""


class Evaluate(_Strict):
    """Train one base VLM on the release, on random subsets of its pool of the same size and
    on the whole pool; evaluate each on easy-VQA's test split (align2.evaluate.compare)."""

    model: str = "tiny-llava"
    """The base image-text-to-text model (folder or Hub id); tiny-llava: the embedded one."""
    steps: int = Field(SFTSettings.max_steps, ge=1)
    """Training steps per run."""
    random_seeds: int = Field(3, ge=1)
    """Random subsets of the same size to compare against."""
    test_questions: int | None = Field(None, ge=1)
    """easy-VQA test questions read; null: all 9,673."""
    generated: int = Field(300, ge=1)
    """Greedy answers read for defects."""


class Output(_Strict):
    formats: tuple[Literal["llava_json", "messages"], ...] = ()
    """Extra exports: llava_json (LLaVA's training files), messages (TRL's SFT layout)."""


class Recipe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=96)  # the Hub's limit
    """The dataset's name (its repository's)."""
    pretty_name: str | None = None
    """The card's title."""
    description: str = ""
    """The card's opening paragraph."""
    source: Source
    """Where the pool comes from."""
    validation: Validation = Validation()
    dedup: Dedup | None = Dedup()
    """null: no dedup."""
    reward: Reward = Reward()
    styler: Styler | None = None
    """null: the training-free style rules."""
    capabilities: Capabilities | None = None
    """mmSSR's capability scores for the budget policy; null: none."""
    selection: Selection = Selection()
    rewrite: Rewrite | None = None
    """The inner LLM's rewrite and review; null: none."""
    evaluate: Evaluate | None = None
    """The downstream comparison (train on the release, random subsets and the pool); null: none."""
    output: Output = Output()
    target: str = Field("local:hub", pattern=r"^(local:.+|hub:[^/\s]+/[^/\s]+)$")
    """local:FOLDER (a local hub) or hub:ORG/NAME (the Hugging Face Hub)."""
    version: str | None = Field(None, pattern=SEMVER.pattern)
    """X.Y.Z; null: the latest release's patch + 1."""
    _base: Path | None = PrivateAttr(None)  # the recipe file's folder: its paths' base

    def as_written(self) -> dict:
        """The recipe as plain data, its paths relative to the recipe's folder again: what a
        card and a release's recipe.yaml show (not the machine's folders)."""
        base = None if self._base is None else str(self._base.resolve()) + "/"

        def relative(value):
            if isinstance(value, dict):
                return {k: relative(v) for k, v in value.items()}
            if isinstance(value, list):
                return [relative(v) for v in value]
            if base and isinstance(value, str) and value.startswith(base):
                return value[len(base) :]
            return value

        return relative(self.model_dump(mode="json"))


def _field(error: dict) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(recipe)"


def load_recipe(path: str | Path, **overrides) -> Recipe:
    """Parse and validate a recipe file, with command-line `overrides` of its top-level
    fields (validated as the file's own); errors name the field, the value and what is
    allowed."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Align2Error(f"recipe {path} does not exist") from None
    except IsADirectoryError:
        raise Align2Error(f"recipe {path} is a folder; pass the recipe's YAML file") from None
    except UnicodeDecodeError as err:
        raise Align2Error(f"recipe {path} is not UTF-8 text: {err.reason}") from None
    except yaml.YAMLError as err:
        raise Align2Error(f"recipe {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise Align2Error(f"recipe {path} must be a mapping of fields, got {type(data).__name__}")
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            value = e.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            lines.append(f"  {_field(e)}: {e['msg']}{shown}")
        raise Align2Error(f"recipe {path} is invalid:\n" + "\n".join(lines)) from None
    base = path.parent.resolve()
    update = {"source": _resolve(recipe.source, base)}
    if recipe.capabilities is not None and recipe.capabilities.scores is not None:
        folder = recipe.capabilities.scores
        folder = folder if folder.is_absolute() else base / folder
        update["capabilities"] = recipe.capabilities.model_copy(update={"scores": folder})
    resolved = recipe.model_copy(update=update)
    resolved._base = path.parent
    return resolved


def _resolve(source: Source, base: Path) -> Source:
    """Relative paths in a recipe are relative to the recipe file."""

    def near(value):
        return base / value if value is not None and not Path(value).is_absolute() else value

    if source.llava is not None:
        llava = source.llava
        paths = {
            "llava_json": tuple(near(p) for p in llava.llava_json),
            "image_folder": near(llava.image_folder),
            "truth": near(llava.truth),
        }
        return source.model_copy(update={"llava": llava.model_copy(update=paths)})
    if source.dataset is not None:
        dataset = source.dataset
        changes = {"image_folder": near(dataset.image_folder)}
        if (base / dataset.path).exists() and not Path(dataset.path).is_absolute():
            changes["path"] = str(base / dataset.path)  # a local folder, not a Hub id
        return source.model_copy(update={"dataset": replace(dataset, **changes)})
    return source


def checked(model: type[BaseModel], values: dict):
    """`model(**values)` for values given as command-line options: errors in one line,
    each naming its option (the recipe's field, as `--field-name`)."""
    try:
        return model(**values)
    except ValidationError as err:
        problems = [
            f"--{str(e['loc'][-1]).replace('_', '-')}: {e['msg']} (got {e.get('input')!r})"
            for e in err.errors()
        ]
        raise Align2Error("; ".join(problems)) from None
