"""Scorers: one module per family, each scorer registered here under its config name.

A scorer turns the usable clips of a shard into one row per clip (``clip_id`` plus measured
columns, no thresholds). ``scores/{name}.parquet`` holds them; ``merge`` prefixes the columns
with ``{name}.`` into ``scores.parquet``. Adding a scorer is a function in a module, a line
in ``REGISTRY`` (a :class:`clipsift.plugins.Registry`) and a config entry under ``scorers:``;
the rules pick it up by name (docs/plugins.md walks through one). The registry names the
function by string so that parsing the Snakefile imports no model code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from ..plugins import Plugin, Registry

log = logging.getLogger(__name__)


EMB = ("embeddings",)  # writes embeddings/{scorer}.npy, which near_duplicates may compare
# the columns each scorer writes (checked against what it wrote by run_scorer); clip_iqa's
# follow its prompts
MOTION = ("px_per_s", "rel_per_s", "min_region_per_s", "textured", "n_pairs")
MOTION_VECTORS = ("px", "rel", "min_region", "min_region_rel", "px_per_s", "rel_per_s",
                  "min_region_per_s", "n_frames")  # fmt: skip
TECHNICAL = (
    "n_samples", "sharpness_mean", "sharpness_min", "luma_mean", "luma_min", "luma_max",
    "contrast_mean", "clipped_low_mean", "clipped_low_max", "clipped_high_mean",
    "clipped_high_max", "border_top", "border_bottom", "border_left", "border_right", "crop",
    "border_ratio",
)  # fmt: skip
AESTHETIC = ("score", "score_mean", "score_min", "score_max", "n_frames", "model", "head")
DOVER = ("technical", "aesthetic", "technical_norm", "aesthetic_norm", "score", "n_frames",
         "model")  # fmt: skip
UNIMATCH = ("score", "px_per_s", "rel_per_s", "n_pairs", "weights")
# the device a scorer's rule asks for: "gpu" scorers run in rule score_gpu (resources gpu=1)
REGISTRY = Registry(
    "scorer",
    {
        "motion": Plugin("clipsift.scorers.motion:score_motion", columns=MOTION),
        "motion_vectors": Plugin(
            "clipsift.scorers.motion:score_motion_vectors", columns=MOTION_VECTORS
        ),
        "technical": Plugin("clipsift.scorers.technical:score_technical", columns=TECHNICAL),
        "aesthetic": Plugin(
            "clipsift.scorers.aesthetic:score_aesthetic", "gpu", gives=EMB, columns=AESTHETIC
        ),
        "aesthetic_linear": Plugin(
            "clipsift.scorers.aesthetic:score_aesthetic_linear",
            "gpu",
            gives=EMB,
            columns=AESTHETIC,
        ),
        "aesthetic_v2_5": Plugin(
            "clipsift.scorers.aesthetic:score_aesthetic_v2_5", "gpu", gives=EMB, columns=AESTHETIC
        ),
        "clip_iqa": Plugin("clipsift.scorers.quality:score_clip_iqa", "gpu", gives=EMB),
        "dover": Plugin("clipsift.scorers.dover:score_dover", "gpu", columns=DOVER),
        "unimatch": Plugin("clipsift.scorers.unimatch:score_unimatch", "gpu", columns=UNIMATCH),
    },
)


@dataclass
class ShardInputs:
    """What a scorer may read: the clips table, the source table, the scan's samples."""

    clips: pd.DataFrame
    source: pd.DataFrame
    samples_path: Path | None = None
    lock_dir: Path | None = None  # where GPU jobs lock a device (clipsift.models.device)
    outputs: dict = field(
        default_factory=dict
    )  # the rule's named outputs (extra files a scorer writes)

    @cached_property
    def samples(self) -> pd.DataFrame:
        return pd.read_parquet(self.samples_path)


def usable_clips(clips: pd.DataFrame) -> pd.DataFrame:
    return clips[clips["error"].isna() & clips["split_reason"].isna()]


def run_scorer(name: str, inputs: ShardInputs, cfg: dict) -> pd.DataFrame:
    """Score the usable clips; every other clip gets a row whose ``error`` says why it has no score."""
    entry = REGISTRY.entry(name)
    ok = usable_clips(inputs.clips)
    scored = entry.load()(ok, inputs, cfg) if len(ok) else pd.DataFrame({"clip_id": []})
    if "error" not in scored:
        scored["error"] = None
    check_declared(name, entry, scored)
    rest = inputs.clips.loc[
        ~inputs.clips.index.isin(ok.index), ["clip_id", "error", "split_reason"]
    ]
    rest = pd.DataFrame(
        {
            "clip_id": rest["clip_id"],
            "error": rest["error"].fillna(rest["split_reason"]).map(lambda r: f"not scored: {r}"),
        }
    )
    out = pd.concat([scored, rest], ignore_index=True) if len(rest) else scored
    log.info("%s: %d clips scored, %d not scored", name, len(scored), len(rest))
    return out


def check_declared(name: str, entry: Plugin, scored: pd.DataFrame) -> None:
    """A scorer that declares its columns wrote exactly them (where it scored any clip): the
    thresholds were checked against the declaration before the run."""
    if not getattr(entry, "columns", ()) or scored["error"].notna().all():
        return
    wrote = set(scored.columns) - {"clip_id", "error"}
    if wrote != set(entry.columns):
        raise RuntimeError(
            f"scorer {name!r} wrote the columns {sorted(wrote)}, but declares {sorted(entry.columns)} "
            "(clipsift.scorers.REGISTRY): fix the declaration"
        )


def merge_scores(paths: dict[str, str | Path]) -> pd.DataFrame:
    """One row per clip, columns ``{scorer}.{column}`` (errors per scorer kept as ``{scorer}.error``)."""
    merged = None
    for name, path in sorted(paths.items()):
        df = pd.read_parquet(path).set_index("clip_id").add_prefix(f"{name}.")
        merged = df if merged is None else merged.join(df, how="outer")
    return merged.reset_index() if merged is not None else pd.DataFrame({"clip_id": []})


def clip_samples(by_video: dict, samples: pd.DataFrame, clip) -> pd.DataFrame:
    """The scan samples inside one clip (``by_video``: the samples grouped by video id); an empty
    frame with the samples' columns when there are none."""
    from ..split.clips import rows_in_clip

    rows = rows_in_clip(by_video, clip)
    return rows if rows is not None else samples.iloc[:0]
