"""The LLM styler with a real causal LM (a tiny random one: labelling well needs a capable
model, which these tests cannot download): one of mmSSR's styles per row, each row its own
label, fingerprinted by the weights, through `datasets.map` and the curation run."""

import pickle
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import release_recipe
from safetensors.torch import load_file, save_file

from align2.builders.llm_styler import LLMStyler, LLMStylerConfig, style_prompt
from align2.builders.pipeline import run_curation
from align2.builders.recipe import load_recipe
from align2.builders.select import Align2Selection
from align2.builders.styler import STYLES
from align2.data.sources import LlavaJsonSource
from align2.errors import Align2Error
from align2.publish.release import build_release, recipe_yaml
from align2.publish.targets import LocalHub


def turns(question: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]


ROWS = [
    turns("Is there a red circle in the image?", "Yes."),
    turns("What colour is the shape?", "Blue."),
    turns(
        "Describe the image in detail.",
        "The image shows a single green triangle on a white background. " * 8,
    ),
    turns("Which is larger, the circle or the square? Compare them.", "The circle is larger."),
    turns("What shape is it? (A) circle (B) square", "A"),
]


def test_a_batch_labels_each_row_as_its_own_prompt_does(lively_lm):
    styler = LLMStyler(LLMStylerConfig(model=lively_lm, batch_size=2))
    together = styler({"conversations": ROWS})["style"]
    alone = [styler({"conversations": [row]})["style"][0] for row in ROWS]
    assert together == alone  # length-sorted batches, every label back on its own row
    assert set(together) <= set(STYLES) and len(set(together)) > 1  # rows not all alike


def test_the_prompt_names_every_style_and_the_first_turn():
    prompt = style_prompt([*ROWS[2], *ROWS[0]])
    assert all(f"{n}. {style}:" in prompt for n, style in enumerate(STYLES, 1))
    assert "Question: Describe the image in detail." in prompt and "<image>" not in prompt
    assert "Answer (88 words):" in prompt and "Is there a red circle" not in prompt


def test_cache_key_follows_the_weights_not_the_batch_size(tiny_lm, tmp_path):
    small, large = (LLMStyler(LLMStylerConfig(model=tiny_lm, batch_size=b)) for b in (2, 32))
    assert small.identity == large.identity
    other = shutil.copytree(tiny_lm, tmp_path / "other")
    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    assert LLMStyler(LLMStylerConfig(model=str(other))).identity != small.identity
    # A copy made by pickling (as `datasets` and worker processes make them) loads and labels.
    small({"conversations": ROWS[:1]})  # loads the model, which the copy must not carry
    copy = pickle.loads(pickle.dumps(small))
    assert copy.reader._loaded is None and copy.config == small.config
    assert copy({"conversations": ROWS})["style"] == small({"conversations": ROWS})["style"]


def test_the_curation_run_keeps_the_llm_styles(tmp_path, small_pool, tiny_models, lively_lm):
    def curation(batch_size: int):
        return run_curation(
            sources=[LlavaJsonSource(small_pool / "llava_pool.json", small_pool / "images")],
            out=tmp_path / "out",
            selection=Align2Selection(0.5, 0.5),
            question_model=tiny_models[0],
            answer_model=tiny_models[1],
            dedup=None,
            styler=LLMStylerConfig(model=lively_lm, batch_size=batch_size),
        )

    run = curation(16)
    scored = run.curation.scored
    styler = LLMStyler(LLMStylerConfig(model=lively_lm))
    expected = styler({"conversations": scored["conversations"]})
    assert scored["style"] == expected["style"] and len(set(expected["style"])) > 1
    written = pq.read_table(next((tmp_path / "out" / "scored").glob("*.parquet")))
    assert written.column("style").to_pylist() == expected["style"]
    assert run.curation.runs["style"]["status"] == "computed"
    again = curation(4)  # a batch size changes speed only: the labels come from disk
    assert again.curation.runs["style"]["status"] == "cached"
    assert again.curation.scored["style"] == expected["style"]


def test_a_recipe_styler_reaches_the_release(tmp_path, tiny_models, tiny_lm, lively_lm):
    recipe = load_recipe(
        release_recipe(tmp_path, tiny_models, tiny_lm, styler={"model": lively_lm}, rewrite=None)
    )
    result = build_release(
        recipe, recipe_yaml(recipe), target=LocalHub(tmp_path / "hub"), work_root=tmp_path / "w"
    )
    scored = pq.read_table(next(Path(result.location, "scored").glob("*.parquet")))
    styler = LLMStyler(LLMStylerConfig(model=lively_lm))
    expected = styler({"conversations": scored.column("conversations").to_pylist()})["style"]
    assert scored.column("style").to_pylist() == expected
    assert f"model: {lively_lm}" in Path(result.location, "recipe.yaml").read_text()
    (tmp_path / "bad.yaml").write_text("name: x\nsource: {demo_pool: {}}\nstyler: {}\n")
    with pytest.raises(Align2Error, match="styler.model: Field required"):
        load_recipe(tmp_path / "bad.yaml")
