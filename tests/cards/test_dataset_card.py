"""The dataset card rendered from hostile values in every field that comes from data or a
recipe: nothing breaks out of its line, its table, the YAML header or the page's HTML."""

import re

import pytest
from huggingface_hub import DatasetCard

from align2.cards.dataset_card import CardInputs, render_dataset_card

HOSTILE = "<img src=x onerror=alert(1)>\n---\nevil: true | `code` ```"
LONG_ID = "x" * 5000


def _inputs(**changes) -> CardInputs:
    example = {
        "id": HOSTILE,
        "reason": HOSTILE,
        "conversations": [{"from": "human", "value": HOSTILE}, {"from": "gpt", "value": HOSTILE}],
    }
    fields = dict(
        repo_id="org/name",
        version="1.2.3",
        content_hash="a" * 64,
        recipe={
            "name": "name",
            "pretty_name": HOSTILE,
            "description": HOSTILE * 3,
            "source": {"llava": {"llava_json": [HOSTILE], "image_folder": HOSTILE}},
            "selection": {"policy": "align2", "question_ratio": 0.3},
            "rewrite": {"model": HOSTILE},
        },
        ledger={"total": 3, "kept": 1, "dropped": {HOSTILE: 1}, "quarantined": {HOSTILE: 1}},
        kept_types=[HOSTILE],
        kept_examples=[example],
        dropped_examples=[example],
        source=HOSTILE,
        question_model=HOSTILE,
        answer_model=HOSTILE,
        license="mit",
        rows=1,
        quality={
            "random_draws": 200,
            "defect_rate": {HOSTILE: {"kept": 0.1, "random": 0.2, "ratio": 0.5}},
        },
        rewrite={
            "model": HOSTILE,
            "report": {"rewritten": 0.5, "reviewed_out": 0.1, "guarded_out": 0.1, "unchanged": 0.3},
        },  # fmt: skip
        data_files={"data": "data/train.parquet"},
        provenance=[{"source": HOSTILE, "file": HOSTILE, "sha256": HOSTILE}],
        changelog={"against": "1.2.2", "added": [LONG_ID, "a`b</code><img src=y>"], "removed": []},
        command=f"align2 build {HOSTILE}",
    )
    return CardInputs(**{**fields, **changes})


def test_no_value_breaks_out_of_the_card():
    text = render_dataset_card(_inputs())
    assert "<img" not in text and "<code" not in text
    assert text.count("\n---\n") == 1 and text.startswith("---\n")  # the header's two lines
    assert "evil: true" not in DatasetCard(text).data.to_dict()
    assert LONG_ID not in text and "x" * 79 + "…" in text  # ids are bounded
    body = text.split("\n---\n", 1)[1]
    for line in body.splitlines():
        if line.startswith("|"):  # a table row keeps its 2 or 4 cells
            assert line.count("|") in (3, 5), line
    fence = re.search(r"```bash\n(.*?)\n```", body, re.S).group(1)
    assert "`" not in fence and "\n" not in fence  # the command cannot close its block
    changelog = body.split("## Changelog", 1)[1].split("## ", 1)[0]
    assert all(line.count("`") % 2 == 0 for line in changelog.splitlines())


def test_the_card_names_no_project_page_that_does_not_exist():
    assert "github.com/align2" not in render_dataset_card(_inputs())


@pytest.mark.parametrize("license", ["mit\n---\nevil: true", "MIT", "my-license"])
def test_a_recipe_license_must_be_one_the_hub_reads(tmp_path, license):
    import yaml

    from align2.builders.recipe import load_recipe
    from align2.errors import Align2Error

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "source": {"demo_pool": {}, "license": license}}))
    with pytest.raises(Align2Error, match=r"source.license: Value error, .* is not a license"):
        load_recipe(path)
    recipe = {"name": "x", "source": {"demo_pool": {}, "license": "other", "license_name": "mine"}}
    path.write_text(yaml.safe_dump(recipe))
    assert load_recipe(path).source.license_name == "mine"


def test_the_card_states_the_rewrite_measures_from_the_report():
    report = {
        "rewritten": 0.1, "reviewed_out": 0.1, "guarded_out": 0.5, "unchanged": 0.3,
        "rows": 87, "rows_rewritten": 16, "guards": {"added_facts": 25, "claims": 17},
        "inner_llm_nll": {
            "turns": 16, "original": 2.7144, "rewritten": 1.9231,
            "all_answers": {"turns": 176, "original": 2.7291, "released": 2.6572},
        },
        "answer_reward": {"scored": 42, "refused": 2, "max_drop": 0.5},
        "truth": {"accepted_answers": 16, "yes_no": 15, "true": 15, "false": 1, "unjudged": 0,
                  "original_false": 0, "flipped": 1},
    }  # fmt: skip
    text = " ".join(render_dataset_card(_inputs(rewrite={"model": "m", "report": report})).split())
    assert "2.7144 for the 16 accepted answers as they were, 1.9231 as rewritten" in text
    assert "over all 176 kept answers, 2.7291 before and 2.6572 as released" in text
    assert "16 of 87 kept rows were changed" in text
    assert "`added_facts` 25, `claims` 17" in text
    assert "scored 42 rewrites that passed the rules and refused 2" in text
    assert (
        "16 accepted (15 yes/no), 15 true, 1 false" in text and "1 made a true answer false" in text
    )
