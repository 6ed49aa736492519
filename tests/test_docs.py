"""The generated docs match the code: docs/cli.md the commands, the README's table the
recipe's fields. `python docs/generate.py` regenerates both."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current():
    generated = _generator().cli_reference()
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == generated, (
        "docs/cli.md is out of date: run `python docs/generate.py`"
    )


def test_cli_reference_lists_every_command_and_option():
    """The reference is read from the same definitions `--help` prints."""
    from typer.testing import CliRunner

    from align2.cli import app

    reference = _generator().cli_reference()
    for command in (["curate"], ["annotate", "prepare"], ["reward", "train"], ["build"]):
        help_text = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
        assert f"## `align2 {' '.join(command)}`" in reference
        for option in set(re.findall(r"--[a-z][a-z-]+", help_text)) - {"--help"}:
            assert f"`{option}" in reference or f"/ {option}" in reference, option


def test_readme_recipe_fields_are_current():
    generator = _generator()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert generator.readme_with_recipe_fields(readme) == readme, (
        "the README's recipe fields are out of date: run `python docs/generate.py`"
    )


def test_recipe_table_has_every_field_with_its_default():
    from align2.builders.recipe import Recipe, Rewrite, Selection

    table = _generator().recipe_fields()
    assert "| `rewrite.max_new_tokens` | integer | `64` |" in table
    for name in Selection.model_fields:
        assert f"| `selection.{name}` |" in table
    for name, field in Rewrite.model_fields.items():
        assert field.description, f"rewrite.{name} has no description"
    assert table.count("\n") > len(Recipe.model_fields)


def test_readme_is_for_users():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", readme), "dated figures go to benchmarks/"
    for link in re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link
