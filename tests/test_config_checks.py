"""Config mistakes that would silently reject every clip stop the run with a clear message."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import SNAKEFILE, base_config, snakemake_cli, write_config

from clipsift.config import load_config
from clipsift.selection import ThresholdError, check_columns, check_thresholds, with_filters


def validated(tmp_path, cfg: dict) -> dict:
    return load_config(write_config(tmp_path, cfg))


def test_thresholds_must_name_a_measured_column(tmp_path):
    src = [{"name": "v", "type": "folder", "path": str(tmp_path)}]
    check_thresholds(validated(tmp_path, base_config(src)))  # the defaults are fine
    bad = base_config(src, select={"thresholds": {"motoin.rel": {"min": 0.001}}})
    with pytest.raises(ThresholdError, match=r"'motoin.rel' names no measured column.*motion"):
        check_thresholds(validated(tmp_path, bad))
    # a misspelt column of a scorer that declares its columns: before any job, not after the scan
    typo = base_config(src, select={"thresholds": {"motion.rel_per_sec": {"min": 0.015}}})
    with pytest.raises(ThresholdError, match=r"did you mean 'motion.rel_per_s'\?"):
        check_thresholds(validated(tmp_path, typo))
    # the default technical threshold with the technical scorer off
    off = base_config(src, scorers={"technical": {"enabled": False}})
    with pytest.raises(ThresholdError, match="'technical.luma_mean'"):
        check_thresholds(validated(tmp_path, off))
    # a filter's columns only while the filter is on
    ocr = base_config(src, select={"thresholds": {"ocr.text_area_max": {"max": 0.1}}})
    check_thresholds(validated(tmp_path, ocr))
    ocr["filters"] = {"ocr": {"enabled": False}}
    with pytest.raises(ThresholdError, match=r"filter is off: filters.ocr.enabled: true"):
        check_thresholds(validated(tmp_path, ocr))


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        # tryout 18: each was accepted, and the run said so only at the export, or never
        ({"motion.rel_per_s": {"min": 1.5, "max": 0.015}}, r"min 1.5 over max 0.015.*swapped"),
        ({"motion.rel_per_s": {}}, r"'motion.rel_per_s' has no bound"),
        ({"flash.ratoi": {"max": 0.0}}, r"did you mean 'flash.ratio'\?\); it writes flash.ratio"),
        ({"Motion.rel_per_s": {"min": 0.015}}, r"did you mean 'motion.rel_per_s'\?"),
        ({"motion_vectors.rel_per_s": {"min": 0.015}}, r"scorers.motion_vectors.enabled: true"),
        ({"technical.crop": {"min": 0}}, r"'technical.crop' is text, not a number"),
        ({"motion": {"min": 0.015}}, r"a column of 'motion' is 'motion.<column>': px_per_s"),
    ],
)
def test_thresholds_that_test_nothing_or_reject_everything_stop_the_run(
    tmp_path, thresholds, message
):
    src = [{"name": "v", "type": "folder", "path": str(tmp_path)}]
    cfg = base_config(src, filters={"flash": {"enabled": True}}, select={"thresholds": thresholds})
    with pytest.raises(ThresholdError, match=message):
        check_thresholds(validated(tmp_path, cfg))


def test_a_misspelt_threshold_stops_the_run(tmp_path, tiny_videos):
    src = [{"name": "v", "type": "folder", "path": str(tiny_videos["a"].parent)}]
    # parse time: the CLI says what is wrong and runs nothing
    cfg = base_config(src, lean=True, select={"thresholds": {"motoin.rel": {"min": 0.001}}})
    write_config(tmp_path / "cli", cfg)
    r = snakemake_cli(tmp_path / "cli", "--snakefile", SNAKEFILE, "--cores", "1")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "'motoin.rel' names no measured column" in out, out
    assert not (tmp_path / "cli" / "results" / "shards").exists()
    # a column the motion scorer does not write: it declares its columns, so the same
    cfg["select"] = {"thresholds": {"motion.rell": {"min": 0.001}}}
    write_config(tmp_path / "cli", cfg)
    r = snakemake_cli(tmp_path / "cli", "--snakefile", SNAKEFILE, "--cores", "1")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "'motion.rell' is not a column of 'motion'" in out, out
    assert "it writes motion.px_per_s, motion.rel_per_s" in out
    assert not (tmp_path / "cli" / "results" / "shards").exists()
    # a filter declares its columns too: before any job (tryout 18: after the scan, retried)
    cfg = base_config(
        src, lean=True, filters={"flash": {"enabled": True}},
        select={"thresholds": {"flash.ratioo": {"max": 0.5}}},
    )  # fmt: skip
    write_config(tmp_path / "cli", cfg)
    r = snakemake_cli(tmp_path / "cli", "--snakefile", SNAKEFILE, "--cores", "1")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "did you mean 'flash.ratio'?" in out, out
    assert not (tmp_path / "cli" / "results" / "shards").exists()
    # a scorer that declares no columns (clip_iqa's follow its prompts, a plugin's): the
    # select job checks the columns written
    table = pd.DataFrame({"clip_iqa.sharp": [0.5], "clip_iqa.error": [None]})
    thresholds = {"clip_iqa.sharpp": {"min": 0.1, "max": None, "record_only": False}}
    full = validated(tmp_path / "api", base_config(src))
    select = {**with_filters(full["select"], full["filters"]), "thresholds": thresholds}
    with pytest.raises(ThresholdError, match="'clip_iqa.sharpp' is not a column of 'clip_iqa'; "
                                             "it wrote clip_iqa.sharp"):  # fmt: skip
        check_columns(table, select)


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "shard_sise: 4\n",
            "unknown key(s) 'shard_sise' ('shard_sise': did you mean 'shard_size'?)",
        ),
        ("scan:\n  detector: adaptve\n", "at scan.detector: 'adaptve' is not one of 'adaptive'"),
        ("scan:\n  detector: [adaptive\n", "config/config.yaml is not valid YAML"),
    ],
    ids=["top-level-typo", "enum", "yaml-syntax"],
)
def test_config_errors_are_short_and_say_where(tmp_path, text, expected):
    import yaml

    (tmp_path / "videos").mkdir()
    cfg = base_config([{"name": "v", "type": "folder", "path": "videos"}])
    cfg.pop("scan")  # the case's own scan section, if any
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg) + text)
    r = snakemake_cli(tmp_path, "--snakefile", SNAKEFILE, "-n")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert expected in out, out
    assert len(out.splitlines()) < 30, out  # no schema dump
    if "YAML" in expected:
        assert "line " in out and "column " in out


# JSON-schema keywords the schema uses; any other key beside a description is the tail of a
# description that YAML cut at an unquoted comma inside a flow mapping
SCHEMA_KEYWORDS = {
    "type", "default", "description", "properties", "items", "enum", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "additionalProperties", "minItems", "maxItems",
    "required", "oneOf", "anyOf", "allOf", "pattern", "$schema", "title", "const", "format",
}  # fmt: skip


def test_no_schema_description_is_cut_short():
    """Every description reaches the config reference whole."""
    import yaml

    from clipsift.config import SCHEMA

    cut = []

    def walk(node, path):
        if not isinstance(node, dict):
            return
        if "description" in node or "type" in node:
            cut.extend(f"{path}: {k!r}" for k in node if k not in SCHEMA_KEYWORDS)
        for key, value in node.items():
            if key == "properties":
                for name, sub in value.items():
                    walk(sub, f"{path}.{name}")
            elif key in ("items", "additionalProperties"):
                walk(value, f"{path}[]")

    walk(yaml.safe_load(SCHEMA.read_text()), "")
    assert not cut, cut


def test_cross_field_checks_run_in_one_step(tmp_path):
    """clipsift.checks.cross_checks: every cross-field check of the config, one error type."""
    from clipsift.checks import cross_checks
    from clipsift.config import ConfigError

    src = [{"name": "v", "type": "folder", "path": str(tmp_path)}]
    cross_checks(validated(tmp_path, base_config(src)))  # the defaults pass
    cases = [
        ({"near_duplicates": {"enabled": True, "embeddings": "aesthetic"}},
         "near_duplicates.embeddings: 'aesthetic' is not an enabled scorer that writes embeddings"),
        ({"near_duplicates": {"enabled": True, "embeddings": "dover"},
          "scorers": {"dover": {"enabled": True}}},
         "'dover' is not an enabled scorer that writes embeddings"),
        ({"export": {"webdataset": {"enabled": True}, "clips": False}},
         "export.webdataset.enabled needs export.clips"),
        ({"select": {"thresholds": {"motoin.rel": {"min": 0.1}}}}, "names no measured column"),
        ({"streaming": {"enabled": True, "upload": False}}, "dedupe_across_shards must be false"),
        ({"select": {"caption": {"min_alignment": 0.2}}}, "min_alignment needs the caption"),
        ({"split": {"min_seconds": 3, "max_seconds": 2}},
         r"split.min_seconds \(3\) is more than split.max_seconds \(2\)"),
    ]  # fmt: skip
    for over, message in cases:
        with pytest.raises(ConfigError, match=message):
            cross_checks(validated(tmp_path, base_config(src, **over)))


def test_module_defaults_are_the_schemas():
    """clipsift.config.defaults(path): a section's defaults as a validated config holds them, so
    the modules that take them from it (scorers, aligners) and the pipeline agree."""
    from clipsift.config import defaults, validate_config
    from clipsift.scorers import quality

    cfg = validate_config({"sources": [{"name": "v", "type": "folder", "path": "."}]})
    for name in cfg["scorers"]:
        assert defaults(f"scorers.{name}") == cfg["scorers"][name], name
    assert defaults("caption.alignment") == cfg["caption"]["alignment"]
    assert cfg["scorers"]["clip_iqa"]["prompts"] == quality.PROMPTS
    assert cfg["caption"]["alignment"]["videoclip_xl"] == defaults("caption.alignment.videoclip_xl")
    # a copy each time: changing one never changes the schema's
    defaults("scorers.dover")["technical"]["clip_len"] = 1
    assert defaults("scorers.dover")["technical"]["clip_len"] == 32


def test_with_defaults_completes_a_partial_section_as_validation_does():
    """A direct caller's partial section (a test, a benchmark, another program) gets the same
    defaults, at every depth, as the pipeline's validated config, and keeps its own values."""
    import copy

    from clipsift.config import validate_config, with_defaults

    part = {"batch_size": 3, "vae": {"name": "ltx", "dtype": "float16"}, "frames": {"count": 9}}
    before = copy.deepcopy(part)
    full = with_defaults("encode", part)
    assert part == before  # a copy: the caller's dict is not filled in
    assert (full["batch_size"], full["vae"]["dtype"], full["frames"]["count"]) == (3, "float16", 9)
    assert full["vae"]["store_dtype"] == "float32" and full["text_encoder"]["batch_size"] == 8
    src = [{"name": "v", "type": "folder", "path": "."}]
    assert full == validate_config({"sources": src, "encode": copy.deepcopy(part)})["encode"]


def test_a_per_frame_looking_motion_bound_is_warned_of(tmp_path, tiny_videos):
    """A per-frame bound renamed but not multiplied passes every check and rejects most moving
    clips (tryout 18: max 0.05 diagonals per second, 55 % of the clips, a 60-px/s pan among
    them): the run says so when the Snakefile is parsed, and goes on."""
    from clipsift.selection import threshold_warnings

    src = [{"name": "v", "type": "folder", "path": str(tiny_videos["a"].parent)}]
    assert threshold_warnings(validated(tmp_path, base_config(src))) == []  # the defaults
    half = {"motion.rel_per_s": {"min": 0.0005, "max": 0.05}}
    cfg = base_config(src, lean=True, select={"thresholds": half})
    assert len(threshold_warnings(validated(tmp_path, cfg))) == 1
    write_config(tmp_path / "cli", cfg)
    r = snakemake_cli(tmp_path / "cli", "--snakefile", SNAKEFILE, "--cores", "1", "-n")
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "looks like a per-frame bound" in out, out[-3000:]
