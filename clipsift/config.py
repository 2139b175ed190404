"""Config loading outside Snakemake (CLI, tests): the same schema, the same defaults."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


class ConfigError(ValueError):
    """The config does not fit the schema; the message names each wrong key, briefly."""


def validate_config(config: dict) -> dict:
    """Validate ``config`` against the schema and fill in its defaults (Snakemake's validate).
    On an error, raise :class:`ConfigError` with one line per problem (the key's path, what is
    wrong, the allowed keys or values, a close match for a typo) instead of Snakemake's message,
    which prints the whole schema (thousands of lines) after the first error."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(SCHEMA))
    except WorkflowError:
        raise ConfigError(explain(config)) from None
    return config


# options that were removed, and what replaces them (said instead of "unknown key")
REMOVED = {
    "scan.min_scene_frames": "removed: the shortest shot is split.min_seconds (in seconds); "
    "short shots are dropped, never merged across a cut",
}


def explain(config: dict, most: int = 5) -> str:
    """The schema errors of ``config``, one short line each (at most ``most``)."""
    import difflib

    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path)))
    lines = []
    for err in errors[:most]:
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        msg = err.message
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = [k for k in err.instance if k not in allowed] if isinstance(
                err.instance, dict
            ) else []  # fmt: skip
            hints = [
                f"{k!r}: did you mean {close[0]!r}?"
                for k in extra
                if (close := difflib.get_close_matches(k, allowed, n=1))
            ]
            gone = [f"{k!r} {REMOVED[f'{where}.{k}']}" for k in extra if f"{where}.{k}" in REMOVED]
            if gone:
                lines.append(f"  at {where}: {'; '.join(gone)}")
                continue
            msg = f"unknown key(s) {', '.join(map(repr, extra))}"
            msg += f" ({'; '.join(hints)})" if hints else f"; allowed: {', '.join(allowed)}"
        elif err.validator == "enum":
            msg = f"{err.instance!r} is not one of {', '.join(map(repr, err.validator_value))}"
        lines.append(f"  at {where}: {msg}")
    if len(errors) > most:
        lines.append(f"  ... and {len(errors) - most} more")
    head = "clipsift: the config does not fit config/schema.yaml (the config reference: docs/config.md):"
    return "\n".join([head, *lines]) if lines else head


def check_yaml(path: str | Path) -> None:
    """Raise :class:`ConfigError` naming the file, line and column when ``path`` is not valid
    YAML (Snakemake only says that some config file is not valid JSON or YAML)."""
    path = Path(path)
    if not path.is_file():
        return
    try:
        yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"clipsift: {path} is not valid YAML: {exc}") from None


def _read(path: str | Path) -> dict:
    try:
        config = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:  # the file and the line, as PyYAML found them
        raise ConfigError(f"clipsift: {path} is not valid YAML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"clipsift: cannot read the config {path}: {exc.strerror}") from None
    if config is not None and not isinstance(config, dict):
        raise ConfigError(f"clipsift: {path} holds a {type(config).__name__}, not a mapping")
    return config or {}


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    config = _read(path)
    config.update(overrides or {})
    return validate_config(config)


# the file the Snakefile's ``configfile:`` reads, relative to the folder snakemake runs in
RUN_CONFIG = Path("config") / "config.yaml"


def load_run_config(paths: list[str | Path] | tuple = ()) -> dict:
    """The config of ``snakemake --configfile PATHS...`` run in this folder: the Snakefile's
    ``config/config.yaml`` (when here), then each of ``paths`` merged over it in order as
    Snakemake merges them (``snakemake.utils.update_config``: mappings key by key, anything else,
    lists included, replaced), validated with the schema's defaults. So ``clipsift status
    --config my.yaml`` reads the run that ``snakemake --configfile my.yaml`` made, when
    ``my.yaml`` holds only what it changes."""
    from snakemake.utils import update_config

    layers = [RUN_CONFIG] if RUN_CONFIG.is_file() else []
    layers += [Path(p) for p in paths]
    if not layers:
        raise ConfigError(
            f"clipsift: no config: {RUN_CONFIG} is not here. Run it in the folder you run "
            "snakemake in, or give the run's files with --config FILE, or --results DIR."
        )
    config: dict = {}
    for path in layers:
        update_config(config, _read(path))
    return validate_config(config)


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


def update_reference(path: str | Path) -> bool:
    """Replace the config reference between the markers in ``path``; True when it changed."""
    path = Path(path)
    text = path.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{schema_markdown()}\n{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


@functools.cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _fill(schema: dict, value):
    """Snakemake's defaults: a missing key with a ``default`` gets it, then objects recurse."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _fill(sub, value[key])
    return value


def defaults(path: str) -> dict:
    """The schema's defaults of the section at the dotted ``path`` (``scorers.aesthetic``), as a
    validated config holds them: the one place a default is written is config/schema.yaml."""
    return with_defaults(path, None)


def with_defaults(path: str, cfg: dict | None) -> dict:
    """A copy of ``cfg``, the section at the dotted ``path``, with every option it leaves out
    set to the schema's default, at any depth (what Snakemake's validation does to the whole
    config). Code that takes a section from direct callers (tests, benchmarks, other
    programs) starts here, then reads ``cfg[key]``: no default is written twice."""
    schema = _schema()
    for key in path.split("."):
        schema = schema["properties"][key]
    base = copy.deepcopy(schema.get("default", {})) if cfg is None else copy.deepcopy(cfg)
    return _fill(schema, base)
