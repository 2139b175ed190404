"""Trainer manifests over the encoded clips (rule ``manifests``, once over every shard).

The clip video files come from rule ``export_clips`` (clipsift/export.py): its per-shard index
(``results/dataset/clips/{shard}.parquet``: ``clip_id``, ``video_id``, ``file``, ``error``) says
where each kept clip's file is; a clip without a file, or whose encode failed, is left out.

One module per trainer layout (``encode.manifests.formats``), each written to what that trainer's
data loader reads, and citing the loader's file and function at the commit it was checked against:

- ``hunyuan`` (:mod:`.hunyuan`): HunyuanVideo-I2V's ``json_path/`` + ``{id}.npy`` + ``meta_file.list``;
- ``omnivideo`` (:mod:`.omnivideo`): OmniVideo's step-1 pickles + the list its step 2 reads;
- ``conversation``, ``easyanimate``, ``text`` (:mod:`.lists`): ``conversation.json``,
  ``easyanimate.json``, ``prompts.txt`` + ``videos.txt``.

Paths. Loaders that join a listed path with a root they are given (EasyAnimate's
``train_data_dir``, a video folder) get paths relative to the folder of the file that names them
(``paths: relative``: the dataset folder can move or be published as a whole). Loaders that open a
listed path as it is, from their own working directory (HunyuanVideo-I2V, OmniVideo), get paths
relative to ``trainer_dir`` (default: the dataset folder, ``results/dataset``: run the trainer
there, or set ``trainer_dir`` to where it runs). ``paths: absolute`` writes absolute paths
everywhere.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import with_defaults
from ..io.files import place

log = logging.getLogger(__name__)


class ManifestConfigError(ValueError):
    pass


class EmptyPrompts(ValueError):
    pass


@dataclass
class Context:
    """Where a writer puts its files and how it names them."""

    out_dir: Path  # the folder being written (swapped into place by the caller)
    final: Path  # the manifests folder's final, absolute path
    cfg: dict  # encode.manifests

    @property
    def absolute(self) -> bool:
        return self.cfg["paths"] == "absolute"

    @property
    def link(self) -> str:
        return self.cfg["link"]

    def ref(self, path, base: Path) -> str:
        """``path`` as named from a file in ``base`` (for loaders that join it with a root)."""
        p = Path(path).absolute()
        return os.fspath(p) if self.absolute else os.path.relpath(p, base)

    def cwd_ref(self, path) -> str:
        """``path`` as a loader that opens it from its working directory (``trainer_dir``) finds it."""
        p = Path(path).absolute()
        if self.absolute:
            return os.fspath(p)
        trainer = self.cfg.get("trainer_dir")
        base = Path(trainer).expanduser().absolute() if trainer else self.final.parent
        return os.path.relpath(p, base)

    def final_of(self, *parts: str) -> Path:
        """A file's final path, for naming it in a manifest."""
        return self.final.joinpath(*parts)


def check_config(config: dict) -> None:
    """Cross-field checks of ``encode.manifests`` at parse time."""
    enc = config.get("encode") or {}
    formats = with_defaults("encode.manifests", enc.get("manifests"))["formats"]
    if "omnivideo" in formats and enc.get("enabled"):
        from .omnivideo import requirements

        problems = requirements(enc)
        if problems:
            raise ManifestConfigError(
                "encode.manifests.formats has omnivideo, but " + "; ".join(problems)
            )


def collect_items(
    latents: list[pd.DataFrame], clip_files: list[pd.DataFrame], final: Path
) -> list[dict]:
    """The encoded clips that have a clip file, sorted by clip id: their ``latents.parquet`` row
    plus ``video_file`` (the clip file's final absolute path) and the file's own size."""
    lat = (
        pd.concat([t[t["status"] == "ok"] for t in latents], ignore_index=True) if latents else None
    )
    files = pd.concat(clip_files, ignore_index=True) if clip_files else None
    if lat is None or not len(lat) or files is None or not len(files):
        return []
    ok = files[files["error"].isna()].set_index("clip_id")
    items = []
    for rec in lat.sort_values("clip_id").to_dict("records"):
        if rec["clip_id"] in ok.index:
            f = ok.loc[rec["clip_id"]]
            # ``file`` is relative to the dataset folder, the manifests folder's parent
            items.append(
                rec
                | {
                    "video_file": final.parent / f["file"],
                    "file_width": f.get("width"),
                    "file_height": f.get("height"),
                }
            )
    return items


def write_manifests(
    latents: list[pd.DataFrame], clip_files: list[pd.DataFrame], out_dir, cfg: dict
) -> dict:
    """Every manifest of ``cfg["formats"]`` over the encoded clips of all shards, into ``out_dir``
    (an empty folder that the caller swaps into place: paths are computed for its final name,
    ``cfg["final_dir"]`` when it differs). Returns counts per manifest."""
    cfg = with_defaults("encode.manifests", cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(out_dir, Path(cfg.get("final_dir") or out_dir).absolute(), cfg)
    items = collect_items(latents, clip_files, ctx.final)
    counts: dict = {"clips": len(items)}
    for name in cfg["formats"]:
        extra = WRITERS[name](items, ctx)
        counts |= {f"{name}.{k}": v for k, v in (extra or {}).items()}
    empty = sum(1 for it in items if not (it["prompt"] or "").strip())
    if empty:
        check_empty_prompts(empty, len(items), cfg["empty_prompts"])
        counts["empty_prompts"] = empty
    log.info("manifests: %d clips (%s)", len(items), ", ".join(cfg["formats"]))
    return counts


def check_empty_prompts(
    empty: int,
    total: int,
    policy: str,
    *,
    where: str = "manifest",
    option: str = "encode.manifests.empty_prompts",
) -> None:
    """An entry with no prompt trains the model on "": say so (``warn``), or stop (``error``);
    ``allow`` for unconditional training on purpose."""
    if policy == "allow":
        return
    msg = (
        f"{empty} of {total} {where} entries have an empty prompt: their clips have neither a "
        "caption (caption stage off, or it failed) nor a caption from the source. Turn the "
        f"caption stage on, or set {option}: allow."
    )
    if policy == "error":
        raise EmptyPrompts(msg)
    log.warning("%s", msg)


from . import hunyuan, lists, omnivideo  # noqa: E402 - the writers use Context

WRITERS = {
    "hunyuan": hunyuan.write,
    "omnivideo": omnivideo.write,
    "conversation": lists.write_conversation,
    "easyanimate": lists.write_easyanimate,
    "text": lists.write_text_files,
}

__all__ = [
    "WRITERS", "Context", "EmptyPrompts", "ManifestConfigError", "check_config",
    "place", "write_manifests",
]  # fmt: skip
