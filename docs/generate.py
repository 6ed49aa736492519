"""Generate the reference parts of the docs from the code, so they cannot drift:
docs/cli.md from the command line's own definitions (what `--help` prints), and the README's
recipe table from the recipe's pydantic models. `python docs/generate.py` rewrites both;
tests/test_docs.py fails when either is out of date."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
CLI_FILE = ROOT / "docs" / "cli.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- recipe-fields:begin -->", "<!-- recipe-fields:end -->"


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _option_rows(command, name: str) -> list[str]:
    """One table row per argument and option, as `--help` shows them."""
    ctx = command.make_context(name, [], resilient_parsing=True)
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or param.name == "help":
            continue
        names, what = record
        rows.append(f"| `{_cell(names)}` | {_cell(what)} |")
    return rows


def _commands(command, path: list[str]):
    """(path, command) for a command and every command under it (typer vendors click, so
    groups are told by their `commands`)."""
    yield path, command
    if hasattr(command, "commands"):
        for name in sorted(command.commands):
            yield from _commands(command.commands[name], [*path, name])


def cli_reference() -> str:
    from align2.cli import app

    lines = [
        "# Command-line reference",
        "",
        "Generated from the command definitions by `python docs/generate.py`; "
        "`align2 COMMAND --help` prints the same.",
    ]
    root = typer.main.get_command(app)
    for path, command in _commands(root, ["align2"]):
        if hasattr(command, "commands") and len(path) > 1:
            continue  # a group's commands have their own sections
        rows = _option_rows(command, path[-1])
        lines += ["", f"## `{' '.join(path)}`", "", _cell(command.help or "").strip()]
        if rows:
            lines += ["", "| argument or option | what |", "| --- | --- |", *rows]
    return "\n".join(lines) + "\n"


def _type(schema: dict, defs: dict) -> str:
    if "enum" in schema:
        return " \\| ".join(str(v) for v in schema["enum"])
    if "anyOf" in schema:
        kinds = [_type(s, defs) for s in schema["anyOf"]]
        named = " \\| ".join(k for k in kinds if k != "null")
        return named + (" or null" if "null" in kinds else "")
    if "$ref" in schema:
        return "mapping"
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}), defs)}"
    return schema.get("type", "any")


def _nested(schema: dict, defs: dict) -> dict | None:
    for option in [schema, *schema.get("anyOf", [])]:
        if "$ref" in option:
            return defs[option["$ref"].split("/")[-1]]
    return None


def _rows(model: dict, defs: dict, prefix: str):
    """(field, type, default, description) for every field, sections before their fields."""
    required = set(model.get("required", ()))
    for name, schema in model.get("properties", {}).items():
        key, what = f"{prefix}{name}", schema.get("description", "")
        default = "(required)" if name in required else f"`{json.dumps(schema.get('default'))}`"
        nested = _nested(schema, defs)
        if nested is None:
            yield key, _type(schema, defs), default, what
            continue
        if what or name in required:
            nullable = any(option.get("type") == "null" for option in schema.get("anyOf", []))
            unset = "default" in schema and schema["default"] is None
            shown = default if name in required or unset else ""
            yield key, "mapping or null" if nullable else "mapping", shown, what
        yield from _rows(nested, defs, key + ".")


def recipe_fields() -> str:
    from align2.builders.recipe import Recipe

    schema = Recipe.model_json_schema()
    lines = ["| field | type | default | what |", "| --- | --- | --- | --- |"]
    for key, kind, default, what in _rows(schema, schema.get("$defs", {}), ""):
        lines.append(f"| `{key}` | {kind} | {default} | {_cell(what)} |")
    return "\n".join(lines)


def readme_with_recipe_fields(readme: str) -> str:
    before, rest = readme.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{recipe_fields()}\n{END}{after}"


def main() -> int:
    CLI_FILE.write_text(cli_reference(), encoding="utf-8")
    README.write_text(readme_with_recipe_fields(README.read_text(encoding="utf-8")), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
