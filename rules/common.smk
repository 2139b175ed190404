# Helpers and input functions shared by the rules. Parse time stays O(shards): the shard plan is
# read from results/plan/shards.json (made once, see clipsift/plan.py), never by listing videos.
import sys

from clipsift import filters, runlock
from clipsift.checks import cross_checks
from clipsift.config import ConfigError
from clipsift.encoders import VAES
from clipsift.filters.ocr import SCAN_KEYS as OCR_SCAN_KEYS
from clipsift.ingest import fetch_params
from clipsift.plan import PlanError, limit_shards, load_shards
from clipsift.plugins import gpus_for
from clipsift.scorers import REGISTRY
from clipsift.selection import threshold_warnings, with_filters
from clipsift.smk import import_from_checkout
from clipsift.split import DETECTORS, detector_device
from clipsift.sources.changes import SourcesChanged, check_sources
from clipsift.streaming import window_dependency
from clipsift.workdirs import BuiltElsewhere, check_workdir, record_build, whole_run
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.settings.enums import PersistenceBackend

R = config["results"]

# Jobs import clipsift from this checkout, whatever environment runs them (--sdm conda envs hold
# only the dependencies): the code of a build is the workflow's own.
import_from_checkout(workflow.basedir)

# cross-field checks the schema cannot express (clipsift/checks.py)
try:
    cross_checks(config)
except ConfigError as exc:
    raise WorkflowError(str(exc))
if workflow.is_main_process:
    for warning in threshold_warnings(config):
        logger.warning(warning)

# The process that schedules the jobs holds the results folder's lock for its whole life (not a
# dry run, not a cluster job), and first checks that no ingested source changed since.
# (output_settings: the executor, and so workflow.dryrun, is not known yet while parsing)
if workflow.is_main_process and not workflow.output_settings.dryrun:
    try:
        runlock.acquire(R)
    except runlock.ResultsLocked as exc:
        raise WorkflowError(str(exc))
    runlock.mark_start(R)
FILE_RECORDS = workflow.workflow_settings.persistence_backend == PersistenceBackend.FILE
if workflow.is_main_process:
    try:
        check_sources(config, R, warn=logger.warning)
        # a results folder built with another config from a folder whose job records this run
        # cannot see (clipsift/workdirs.py): Snakemake would see no change
        check_workdir(R, config, sys.argv, file_records=FILE_RECORDS)
    except (SourcesChanged, BuiltElsewhere) as exc:
        runlock.release(R)
        raise WorkflowError(str(exc))


onsuccess:
    # a run of the default target, whole: later runs from other folders compare their config
    # with this one's (a partial run leaves the rest as it was)
    if whole_run(workflow.dag_settings):
        record_build(R, config)
    runlock.release(R)


onerror:
    runlock.release(R)


try:
    SHARDS = limit_shards(
        load_shards(config, validated=True, dryrun=workflow.output_settings.dryrun),
        config["limit_shards"],
    )
except PlanError as exc:
    runlock.release(R)
    raise WorkflowError(str(exc))
SOURCES = {s["name"]: s for s in config["sources"]}


wildcard_constraints:
    shard="[A-Za-z0-9_.-]+",


def shard_path(name):
    """Path template of a per-shard output, e.g. shard_path('clips.parquet')."""
    return f"{R}/shards/{{shard}}/{name}"


SHARD_NAMES = sorted(SHARDS)


def shard_files(name):
    """``name`` (e.g. clips.parquet) of every shard, as a list."""
    return [f"{R}/shards/{s}/{name}" for s in SHARD_NAMES]


def all_shards(name):
    """``name`` of every shard, as an input function of the rules that read every shard.

    Evaluated when Snakemake builds such a job, not at every parse: each cluster job re-parses
    the Snakefile, and building these lists (2,000 files each at a million videos) at parse time
    made a job's parse time grow with the number of shards (bench/results/scale.md).
    """
    return lambda wildcards: shard_files(name)


def ingest_input(wildcards):
    """What ingest reads: the shard's plan file, or for a generate source the generated videos;
    streaming: also the release of the shard `streaming.window` places earlier, so that at most
    that many shards' downloads are on disk (clipsift/streaming.py)."""
    inputs = {"plan": f"{R}/plan/shards/{wildcards.shard}.parquet"}
    if SHARDS[wildcards.shard]["kind"] == "prompt":
        inputs["plan"] = f"{R}/shards/{wildcards.shard}/generated.parquet"
    if config["streaming"]["enabled"]:
        before = window_dependency(
            SHARD_NAMES, wildcards.shard, config["streaming"]["window"]
        )
        if before:
            inputs["window"] = f"{R}/shards/{before}/released.json"
    return inputs


def releases():
    """The shards whose downloads and extracted members are released when they are done:
    every shard when streaming, else the Hub-archive shards of sources without keep_extracted.
    """
    if config["streaming"]["enabled"]:
        return SHARD_NAMES
    return [
        s
        for s in SHARD_NAMES
        if SOURCES[SHARDS[s]["source"]]["type"] == "hf_archives"
        and not SOURCES[SHARDS[s]["source"]].get("keep_extracted")
    ]


def source_of(wildcards):
    return SOURCES[SHARDS[wildcards.shard]["source"]]


def fetched_source(wildcards):
    """The source options the per-shard rules read (clipsift.ingest.fetch_params): editing
    the others (shard_size, paths, columns: they act through the plan) reruns no shard.
    """
    return fetch_params(source_of(wildcards))


def enabled_scorers():
    return sorted(n for n, c in config["scorers"].items() if c.get("enabled"))


def scorers_on(device):
    """Enabled scorers that run on ``device`` (cpu or gpu), for the rules' wildcard constraints."""
    return [n for n in enabled_scorers() if REGISTRY.entry(n).device == device]


def scan_ocr():
    """What the scan's OCR reading depends on, when it runs in the scan (frames: scan)."""
    ocr = config["filters"]["ocr"]
    if not (ocr["enabled"] and ocr["frames"] == "scan"):
        return None
    return {k: ocr[k] for k in OCR_SCAN_KEYS}


def scan_gpus():
    """The scan's gpu resource: 1 when its OCR (filters.ocr.gpu) or its detector may use one."""
    detector = DETECTORS.entry(config["scan"]["detector"])
    ocr_gpu = bool(scan_ocr() and scan_ocr()["gpu"])
    return max(int(ocr_gpu), gpus_for(detector, detector_device(config["scan"])))


def ocr_inputs(wildcards):
    """OCR aggregates the scan's OCR rows (scan mode) or reads frames from the sources."""
    inputs = {
        "clips": shard_path("clips.parquet"),
        "source": shard_path("source.parquet"),
    }
    if scan_ocr():
        inputs["scan_ocr"] = shard_path("scan/ocr.parquet")
    return {k: v.format(shard=wildcards.shard) for k, v in inputs.items()}


def filter_outputs():
    """Each enabled filter's per-shard output, named by the filter (``**filter_outputs()`` in
    a rule's input: selection and the dataset read every registered filter alike)."""
    return {n: shard_path(f"{n}.json") for n in filters.enabled(config["filters"])}


def all_filter_outputs():
    """The same for every shard."""
    return {n: all_shards(f"{n}.json") for n in filters.enabled(config["filters"])}


def stage_on(name):
    """Whether an optional stage (a top-level config section with ``enabled``) is on."""
    return bool(config.get(name, {}).get("enabled"))


def selection_file():
    """The selection the stages after captioning follow: select's, or, with a caption test
    (select.caption.min_alignment), the one rule select_captions makes after the captions.
    """
    captioned = (
        stage_on("caption") and config["select"]["caption"]["min_alignment"] is not None
    )
    return "selection_captioned.parquet" if captioned else "selection.parquet"


def dedup_output():
    """The cross-shard near-duplicate table, when that stage is on (select reads it)."""
    return f"{R}/dedup/near_duplicates.parquet" if stage_on("near_duplicates") else []


def all_targets():
    targets = [f"{R}/dataset/metadata.parquet", f"{R}/report/calibration"]
    targets += [f"{R}/dataset/{f}" for f in ("provenance.json", "README.md")]
    targets.append(f"{R}/report/index.html")
    if stage_on("caption"):
        targets += shard_files("caption.json")
    if stage_on("encode"):
        targets += shard_files("latents.parquet")
        targets.append(f"{R}/dataset/manifests")
    if config["export"]["shard_metadata"] or config["streaming"]["enabled"]:
        targets += shard_files("metadata.jsonl")
    targets += [f"{R}/shards/{s}/released.json" for s in releases()]
    if config["streaming"]["enabled"] and config["streaming"]["upload"]:
        targets.append(
            f"{R}/dataset/.published.json"
        )  # the card and provenance, at the end
    return targets


def shard_tables(wildcards):
    """Everything of one shard that the dataset tables are made of."""
    inputs = {
        "sources": shard_path("source.parquet"),
        "clips": shard_path("clips.parquet"),
        "scores": shard_path("scores.parquet"),
        "selection": shard_path(selection_file()),
    }
    inputs |= filter_outputs()
    if stage_on("caption"):
        inputs["captions"] = shard_path("caption.json")
    if stage_on("encode"):
        inputs["latents"] = shard_path("latents.parquet")
    if config["export"]["clips"]:
        inputs["clip_files"] = f"{R}/dataset/clips/{{shard}}.parquet"
    return {k: v.format(shard=wildcards.shard) for k, v in inputs.items()}


def release_inputs(wildcards):
    """The shard's outputs after which nothing reads its videos any more."""
    done = shard_tables(wildcards) | {"metadata": shard_path("metadata.jsonl")}
    if config["streaming"]["upload"]:
        done["upload"] = shard_path("upload.json")
    return {k: v.format(shard=wildcards.shard) for k, v in done.items()}
