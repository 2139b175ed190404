"""Config loading outside Snakemake (CLI, tests): the same schema, the same defaults."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    from snakemake.utils import validate

    config = yaml.safe_load(Path(path).read_text()) or {}
    config.update(overrides or {})
    validate(config, str(SCHEMA))
    return config


def schema_markdown(schema: dict | None = None) -> str:
    """The config reference: one table row per option, from the schema's descriptions."""
    schema = schema or yaml.safe_load(SCHEMA.read_text())
    rows = ["| option | default | description |", "| --- | --- | --- |"]

    def walk(node: dict, prefix: str) -> None:
        for key, sub in node.get("properties", {}).items():
            name = f"{prefix}{key}"
            if sub.get("type") == "object" and "properties" in sub:
                if sub.get("description"):
                    rows.append(f"| `{name}` | | {_one_line(sub['description'])} |")
                walk(sub, name + ".")
                continue
            if sub.get("type") == "array" and "properties" in sub.get("items", {}):
                rows.append(f"| `{name}` | | {_one_line(sub.get('description', ''))} |")
                walk(sub["items"], name + "[].")
                continue
            default = f"`{json.dumps(sub['default'])}`" if "default" in sub else ""
            rows.append(f"| `{name}` | {default} | {_one_line(sub.get('description', ''))} |")

    walk(schema, "")
    return "\n".join(rows)


def _one_line(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def update_readme(path: str | Path) -> bool:
    """Replace the config reference between the markers in ``path``; True when it changed."""
    path = Path(path)
    text = path.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{schema_markdown()}\n{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text
