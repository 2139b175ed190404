"""Partial reruns (docs/scaling.md, "Partial reruns"): what Snakemake would run, from dry runs.

One real run of the pipeline on three tiny videos in two shards, then dry runs of the common
cases: one shard, one stage for all shards (``--until``, ``--forcerun``), a changed split option,
a changed threshold, a changed caption model. The per-shard stages are checked job by job. A
config change must re-run exactly what forcing its rule re-runs (``--forcerun <rule>``: the
rule and everything downstream), so the finishing rules (export, card, report...) may grow
without these tests changing; what must not run (a decode, a measurement) is checked by name.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from helpers import SNAKEFILE, base_config, run_snakemake, write_config

pytestmark = pytest.mark.slow

S0, S1 = "vid-00000", "vid-00001"  # a | b
PER_SHARD_AFTER_SPLIT = {"flash": 2, "ocr": 2, "score_cpu": 4, "merge_scores": 2, "select": 2}
MEASUREMENTS = {"ingest", "scan", "split", "flash", "ocr", "score_cpu", "score_gpu", "merge_scores"}


def dag(workdir: Path, config: dict, *, executor: str = "dryrun", **settings):
    """Jobs Snakemake decides to run (rule -> count, and (rule, shard) pairs), for DAG settings
    that ``run_snakemake`` does not take (``until``, ``forceall``) and for the touch executor."""
    from snakemake.api import SnakemakeApi
    from snakemake.scheduling.greedy import SchedulerSettings as GreedySettings
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
        SchedulingSettings,
    )

    workdir = Path(workdir).resolve()
    configfile = write_config(workdir, config)
    cwd = os.getcwd()
    try:
        out = OutputSettings(dryrun=executor == "dryrun", quiet={Quietness.ALL})
        with SnakemakeApi(out) as api:
            wf = api.workflow(
                resource_settings=ResourceSettings(cores=2),
                config_settings=ConfigSettings(configfiles=[configfile]),
                snakefile=SNAKEFILE,
                workdir=workdir,
            )
            kw = {
                k: frozenset(v) if isinstance(v, (list, tuple, set)) else v
                for k, v in settings.items()
            }
            dag_api = wf.dag(DAGSettings(**kw))
            dag_api.execute_workflow(
                executor=executor,
                scheduling_settings=SchedulingSettings(scheduler="greedy"),
                scheduler_settings=GreedySettings(),
            )
            jobs = [
                (j.rule.name, j.wildcards.get("shard"))
                for j in dag_api.workflow_api._workflow.dag.needrun_jobs(exclude_finished=False)
                if j.rule.name != "all"
            ]
    finally:
        os.chdir(cwd)
    return Counter(r for r, _ in jobs), set(jobs)


def counts(result) -> Counter:
    return Counter(j.rule for j in result.jobs if j.rule != "all")


def forced(workdir: Path, config: dict, rule: str) -> Counter:
    """What ``snakemake --forcerun <rule>`` would run: the rule and all that follows it."""
    return dag(workdir, config, forcerun=[rule])[0]


@pytest.fixture(scope="module")
def config(tiny_videos, tmp_path_factory) -> dict:
    """Two tiny videos (a: two scenes, b: one), one per shard."""
    videos = tmp_path_factory.mktemp("rerun-videos")
    for name in ("a", "b"):
        shutil.copy(tiny_videos[name], videos / f"{name}.mp4")
    return base_config([{"name": "vid", "type": "folder", "path": str(videos)}], shard_size=1)


@pytest.fixture(scope="module")
def done(config, tmp_path_factory):
    """A finished run: (workdir, config)."""
    workdir = tmp_path_factory.mktemp("reruns")
    run_snakemake(workdir, config)
    assert (workdir / "results" / "dataset" / "metadata.parquet").exists()
    return workdir, config


def test_one_shard_of_a_fresh_run(config, tmp_path):
    cfg = config
    # snakemake results/shards/vid-00000/scores.parquet
    res = run_snakemake(tmp_path, cfg, targets=[f"results/shards/{S0}/scores.parquet"], dryrun=True)
    assert counts(res) == {"ingest": 1, "scan": 1, "split": 1, "score_cpu": 2, "merge_scores": 1}
    assert {j.shard for j in res.jobs} == {S0}
    # snakemake --until split: the first three stages of every shard, nothing after
    n, _ = dag(tmp_path, cfg, until=["split"])
    assert n == {"ingest": 2, "scan": 2, "split": 2}


def test_nothing_to_do_after_a_run(done):
    workdir, cfg = done
    assert counts(run_snakemake(workdir, cfg, dryrun=True)) == {}


def test_one_stage_for_all_shards(done):
    workdir, cfg = done
    # snakemake --forcerun split --until split: only the split jobs
    n, jobs = dag(workdir, cfg, forcerun=["split"], until=["split"])
    assert n == {"split": 2} and {s for _, s in jobs} == {S0, S1}
    # snakemake --forcerun scan: the scan and everything after it, never the ingest
    n = counts(run_snakemake(workdir, cfg, forcerun=["scan"], dryrun=True))
    assert {r: n[r] for r in ("ingest", "scan", "split", *PER_SHARD_AFTER_SPLIT)} == {
        "ingest": 0,
        "scan": 2,
        "split": 2,
        **PER_SHARD_AFTER_SPLIT,
    }
    assert n["export"] == 1 and n["calibrate"] == 1


def test_one_shard_again(done):
    workdir, cfg = done
    # snakemake --forcerun scan results/shards/vid-00001/scores.parquet
    res = run_snakemake(
        workdir,
        cfg,
        targets=[f"results/shards/{S1}/scores.parquet"],
        forcerun=["scan"],
        dryrun=True,
    )
    assert counts(res) == {"scan": 1, "split": 1, "score_cpu": 2, "merge_scores": 1}
    assert {j.shard for j in res.jobs} == {S1}


def test_changed_source_option_of_the_plan_reruns_no_shard(done):
    """A source's shard_size (or another option that acts through the plan) is not a param of
    the per-shard rules (clipsift.ingest.fetch_params): existing shards keep their items, so
    no shard runs again (before, every shard of the source did, from ingest). Only the
    provenance, which records the whole config, and the card and report made from it do."""
    workdir, cfg = done
    src = {**cfg["sources"][0], "shard_size": 5, "recursive": False}
    try:
        res = run_snakemake(workdir, {**cfg, "sources": [src]}, dryrun=True)
    finally:
        write_config(workdir, cfg)
    assert counts(res) == {"provenance": 1, "card": 1, "report": 1}


def test_changed_max_error_share_reruns_nothing(done):
    """Raising max_error_share accepts a shard that failed; it was a param of the score, caption,
    encode and export rules, so every finished job of theirs ran again (scorers and encoders
    included). The jobs read it from the config now; only the provenance records it."""
    workdir, cfg = done
    try:
        res = run_snakemake(workdir, {**cfg, "max_error_share": 1.0}, dryrun=True)
    finally:
        write_config(workdir, cfg)
    assert counts(res) == {"provenance": 1, "card": 1, "report": 1}


def test_changed_split_option_does_not_decode_again(done):
    workdir, cfg = done
    changed = {**cfg, "split": {**cfg["split"], "min_seconds": 1.0}}
    try:
        res = run_snakemake(workdir, changed, dryrun=True)
    finally:
        write_config(workdir, cfg)
    n = counts(res)
    assert n == forced(workdir, cfg, "split")
    assert n["scan"] == n["ingest"] == 0 and n["split"] == 2
    assert {r: n[r] for r in PER_SHARD_AFTER_SPLIT} == PER_SHARD_AFTER_SPLIT


def test_changed_threshold_reruns_only_selection_and_what_follows(done):
    workdir, cfg = done
    changed = {**cfg, "select": {"thresholds": {"motion.rel_per_s": {"min": 0.03, "max": 1.5}}}}
    try:
        res = run_snakemake(workdir, changed, dryrun=True)
    finally:
        write_config(workdir, cfg)
    n = counts(res)
    # the thresholds are params of select and of calibrate (which draws them on its plots)
    assert n == forced(workdir, cfg, "select") | forced(workdir, cfg, "calibrate")
    assert n["select"] == 2 and n["calibrate"] == 1 and n["export"] == 1
    assert not set(n) & MEASUREMENTS, n


def test_changed_caption_model_reruns_only_the_captions(done, tmp_path):
    """Captions are recorded as made with model A (the touch executor records the job's params
    as a real run does, without loading a model); then the config asks for model B."""
    src, cfg = done
    workdir = tmp_path / "w"
    shutil.copytree(src, workdir, symlinks=True)  # copy2: mtimes and .snakemake metadata kept
    cap = {"enabled": True, "provider": "local", "model_id": "org/captioner-A", "device": "cpu"}
    with_a = {**cfg, "caption": cap}
    n, _ = dag(workdir, with_a)
    assert n["caption"] == 2 and not set(n) & (MEASUREMENTS | {"select"}), n  # captions are added
    for shard in (S0, S1):
        (workdir / "results" / "shards" / shard / "caption.json").write_text("{}\n")
    n, _ = dag(workdir, with_a, executor="touch", forcerun=["caption"])
    assert n["caption"] == 2
    assert dag(workdir, with_a)[0] == {}

    with_b = {**cfg, "caption": {**cap, "model_id": "org/captioner-B"}}
    n, jobs = dag(workdir, with_b)
    assert {s for r, s in jobs if r == "caption"} == {S0, S1}
    assert n == forced(workdir, with_b, "caption")
    assert not set(n) & (MEASUREMENTS | {"select"}), n
