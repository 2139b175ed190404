"""The generate stage: one shard of prompts -> mp4 videos + ``generated.parquet``.

Rows of ``generated.parquet`` have the plan's item columns (``source, id, uri, path, caption,
extra, kind, archive``) plus ``error``, so the ingest rule reads it like a plan file: ``path`` is
the absolute path of the video, ``caption`` the prompt, ``kind`` "video", and ``extra`` (JSON)
keeps the prompt list's columns and adds ``generate``: generator, pipeline, model, asked and
resolved revision, seeds, the parameters used, device, dtype, memory options and latency.

Failures are data: an item whose image is missing or whose generation raises is a row with an
``error``, and the shard goes on. The job fails only when the model cannot be loaded, or when
every item failed inside the pipeline (a config the model cannot run, not a bad item).

Resuming: each finished video is kept in ``{results}/cache/generate/{shard}/`` under a key of
everything that decides its pixels (settings, prompt, image content, seed, device type), and
linked into the rule's output folder. A rerun of a killed or changed job generates only what is
not there yet; the cache may be deleted at any time.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.atomic import atomic_path
from ..io.files import place
from ..io.hashing import file_digest, json_digest
from ..models.device import free_memory
from ..plan import ITEM_COLUMNS
from . import GeneratorError, check_source, get
from . import pipeline as gp
from .video import write_mp4

log = logging.getLogger(__name__)

OUT_COLUMNS = [*ITEM_COLUMNS, "error"]
CRF = 17


class ItemError(Exception):
    """Something wrong with one item's input (its image): a row with an error."""


class LoadError(RuntimeError):
    """The model cannot be loaded (a wrong id or revision, no Hub, a missing package): no item
    can work, the job fails."""


def _load_image(path: str | None):
    from PIL import Image, UnidentifiedImageError

    if not path:
        raise ItemError("no image: an image-to-video generator needs `image_key` in the list")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise ItemError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ItemError(f"cannot read image {path}: {exc}") from None


class Generation:
    """The generator(s) of one source, loaded on first use."""

    def __init__(self, source: dict, device: str):
        check_source(source)
        self.source = source
        self.device = device
        self.seed = int(source.get("seed") or 0)
        gen = get(source["generator"])
        self.chain = gen.kind == "t2i" and source.get("t2i_as") == "first_frame"
        if self.chain:
            sub = source.get("i2v") or {}
            i2v = get(sub["generator"])
            video_cfg = {**sub}
            for k in ("width", "height", "dtype"):  # one size for image and video
                video_cfg.setdefault(k, source.get(k))
            self.video = gp.settings(video_cfg, i2v, size_from=gen)
            size = {k: self.video.params[k] for k in ("width", "height")}
            self.image = gp.settings({**source, **size}, gen, size_from=i2v)
            self.gens = {"image": gen, "video": i2v}
        else:
            self.video = gp.settings(source, gen)
            self.image = None
            self.gens = {"video": gen}
        self._loaded: dict[str, gp.Loaded] = {}

    def settings(self) -> dict:
        out = {"video": self.video.record()}
        if self.image:
            out["first_frame"] = self.image.record()
        return out

    def loaded(self, which: str) -> gp.Loaded:
        if which not in self._loaded:
            s = self.video if which == "video" else self.image
            try:
                self._loaded[which] = gp.load(
                    s,
                    self.gens[which],
                    device=self.device,
                    cpu_offload=self.source.get("cpu_offload") or "none",
                    vae_tiling=bool(self.source.get("vae_tiling")),
                    vae_slicing=bool(self.source.get("vae_slicing")),
                )
            except Exception as exc:
                raise LoadError(
                    f"cannot load generator {s.generator} ({s.pipeline} from {s.model}@"
                    f"{s.revision}): {exc}. Check `model` and `revision` (a Hub id the machine "
                    "can reach or has in its cache, or a local folder) and HF_TOKEN for gated "
                    "models."
                ) from exc
        return self._loaded[which]

    def cache_key(self, prompt: str | None, image: str | None, seed: int) -> str:
        image_hash = file_digest(image) if image and os.path.isfile(image) else image
        return json_digest(
            {
                "v": 1,
                "settings": self.settings(),
                "device": self.device.split(":")[0],
                "prompt": prompt,
                "image": image_hash,
                "seed": seed,
                "t2i_as": self.source.get("t2i_as"),
                "crf": CRF,
            },
            16,
            ascii_only=True,
        )

    def make(self, item_id: str, prompt: str | None, image_path: str | None, work: Path) -> dict:
        """Generate one item into ``work/{item_id}.mp4`` (plus its first frame for a chain)."""
        seed = gp.item_seed(self.seed, item_id)
        info: dict = {"seed": seed, "global_seed": self.seed}
        video = self.video
        # image-to-video: the list's image; a chain: the list's image where the row gives one
        given = (video.kind == "i2v" and not self.chain) or bool(self.chain and image_path)
        image = None
        if given:
            image = gp.prepare_image(_load_image(image_path), **_size(video))
            info["first_frame"] = {"from": "list", "image": image_path}
        # models load before the clock starts: latency_s is the generation alone
        loaded = self.loaded("video")
        t2i = self.loaded("image") if self.chain and not given else None
        t0 = time.perf_counter()
        if t2i is not None:
            image, seed = self._first_frame(t2i, item_id, prompt, seed, work, info, t0)
        frames = gp.run(loaded, prompt, seed, image=image)
        latency = time.perf_counter() - t0
        return self._write_video(
            work / f"{item_id}.mp4", prompt, frames, loaded, seed, info, latency
        )

    def _first_frame(
        self, t2i: gp.Loaded, item_id: str, prompt, seed: int, work: Path, info: dict, t0: float
    ) -> tuple:
        """A chain's generated first frame (saved as a png, noted in ``info``) and the video's seed."""
        frame = gp.run(t2i, prompt, seed)[0]
        png = work / f"{item_id}.first_frame.png"
        _save_png(frame, png)
        image = gp.prepare_image(frame, **_size(self.video))
        info["first_frame"] = {
            "from": self.image.generator,
            "image": png.name,
            "seed": seed,
            "latency_s": round(time.perf_counter() - t0, 3),
            **_model(t2i.record),
        }
        seed = gp.item_seed(self.seed, f"{item_id}:i2v")  # the video's own noise
        info["seed"] = seed
        return image, seed

    def _write_video(
        self, dest: Path, prompt, frames, loaded: gp.Loaded, seed: int, info: dict, latency: float
    ) -> dict:
        """Write the mp4 (its metadata says how it was made) and return the item's record."""
        video = self.video
        n, h, w, _ = frames.shape
        meta = {
            "generator": video.generator,
            "kind": video.kind if not self.chain else "t2i+i2v",
            **_model(loaded.record),
            "seed": seed,
            "params": {**video.params, "pipeline_kwargs": video.pipeline_kwargs},
        }
        t1 = time.perf_counter()
        write_mp4(
            dest,
            frames,
            video.params["fps"],
            crf=CRF,
            metadata={"description": prompt or "", "comment": meta},
        )
        return {
            **meta,
            **info,
            "pipeline": video.pipeline,
            "global_seed": self.seed,
            "frames": int(n),
            "width": int(w),
            "height": int(h),
            "fps": video.params["fps"],
            "device": loaded.record["device"],
            "dtype": loaded.record["dtype"],
            "memory": {k: loaded.record[k] for k in ("cpu_offload", "vae_tiling", "vae_slicing")},
            "latency_s": round(latency, 3),
            "write_s": round(time.perf_counter() - t1, 3),
            "versions": _versions(),
        }

    def load_s(self) -> float:
        return sum(x.record.get("load_s", 0.0) for x in self._loaded.values())


def _size(s: gp.Settings) -> dict:
    return {"width": s.params["width"], "height": s.params["height"]}


def _model(record: dict) -> dict:
    out = {k: record.get(k) for k in ("id", "revision", "resolved_revision")}
    out["model"] = out.pop("id")
    if record.get("components"):
        out["components"] = {
            k: {"id": v.get("id"), "resolved_revision": v.get("resolved_revision")}
            for k, v in record["components"].items()
        }
    return out


def _save_png(frame: np.ndarray, dest: Path) -> None:
    from PIL import Image

    with atomic_path(dest) as tmp:
        Image.fromarray(frame).save(tmp, format="PNG")


_VERSIONS: dict = {}


def _versions() -> dict:
    if not _VERSIONS:
        import diffusers
        import torch
        import transformers

        _VERSIONS.update(
            diffusers=diffusers.__version__,
            transformers=transformers.__version__,
            torch=torch.__version__,
        )
    return _VERSIONS


def _cached_or_made(
    generation: Generation, item_id: str, prompt, image, key: str, cache_dir: Path
) -> dict:
    """The item's record from the cache, or generated in a work folder and moved into the cache."""
    cached = cache_dir / f"{item_id}.{key}.json"
    if cached.exists() and (cache_dir / f"{item_id}.{key}.mp4").exists():
        info = json.loads(cached.read_text())
        info["cached"] = True
        return info
    work = cache_dir / f".{item_id}.{key}.work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    info = generation.make(item_id, prompt, image, work)
    for f in work.iterdir():  # name the files by the key, the record last
        os.replace(f, cache_dir / f.name.replace(item_id, f"{item_id}.{key}", 1))
    work.rmdir()
    with atomic_path(cached) as tmp:
        tmp.write_text(json.dumps(info, sort_keys=True, default=str))
    info["cached"] = False
    return info


def _link_outputs(info: dict, item_id: str, key: str, cache_dir: Path, out_dir: Path) -> Path:
    """Link the cached video (and a generated first frame) into the output folder."""
    dest = out_dir / f"{item_id}.mp4"
    place(cache_dir / f"{item_id}.{key}.mp4", dest)
    if "first_frame" in info and info["first_frame"].get("from") != "list":
        png = out_dir / f"{item_id}.first_frame.png"
        place(cache_dir / f"{item_id}.{key}.first_frame.png", png)
        info["first_frame"]["image"] = str(png.resolve())
    return dest


def _item_row(generation: Generation, rec: dict, out_dir: Path, cache_dir: Path) -> tuple:
    """One plan row -> its output row, and the exception when the pipeline failed on it."""
    extra = json.loads(rec.get("extra") or "{}")
    item_id, prompt, image = rec["id"], rec.get("caption"), extra.get("image")
    row = {c: rec.get(c) for c in ITEM_COLUMNS}
    row.update(kind="video", archive=None, path=None, error=None)
    key = generation.cache_key(prompt, image, gp.item_seed(generation.seed, item_id))
    failure = None
    try:
        info = _cached_or_made(generation, item_id, prompt, image, key, cache_dir)
        row["path"] = str(_link_outputs(info, item_id, key, cache_dir, out_dir).resolve())
        extra["generate"] = info
        log.info(
            "%s: %d frames %dx%d in %.1f s%s",
            item_id,
            info["frames"],
            info["width"],
            info["height"],
            info["latency_s"],
            " (cached)" if info["cached"] else "",
        )
    except ItemError as exc:
        row["error"] = f"generate: {exc}"
        log.warning("%s: %s", item_id, exc)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - failures are data; see the module docstring
        failure = exc
        row["error"] = (
            f"generate: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        log.exception("%s: generation failed", item_id)
        free_memory()
    extra.setdefault("generate", {"settings": generation.settings()})
    row["extra"] = json.dumps(extra, sort_keys=True, default=str)
    return row, failure


def generate_shard(
    items: pd.DataFrame,
    source: dict,
    *,
    out_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    device: str = "cpu",
) -> pd.DataFrame:
    """Generate every item of a shard's plan; returns the ``generated.parquet`` table."""
    try:
        generation = Generation(source, device)
    except GeneratorError as exc:
        raise SystemExit(f"generate: {exc}") from None
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    rows, failed, first_error = [], 0, None
    t0 = time.monotonic()
    for i, rec in enumerate(items.to_dict("records")):
        row, failure = _item_row(generation, rec, out_dir, cache_dir)
        if failure is not None:
            failed += 1
            first_error = first_error or failure
        rows.append(row)
        if (i + 1) % 10 == 0:
            log.info("generate: %d/%d items (%.0f s)", i + 1, len(items), time.monotonic() - t0)
    if failed and all(r["error"] for r in rows):
        raise RuntimeError(
            f"generate: no video made, every item that reached the pipeline failed; the first: "
            f"{first_error!r}. "
            "Check the generator settings (size, frames, pipeline_kwargs) and the log."
        ) from first_error
    table = pd.DataFrame(rows, columns=OUT_COLUMNS).astype({"error": object, "path": object})
    table.attrs["timing"] = {"load_s": generation.load_s(), "wall_s": time.monotonic() - t0}
    log.info(
        "generate: %d items, %d videos, %d errors (%.0f s)",
        len(table),
        int(table["error"].isna().sum()),
        int(table["error"].notna().sum()),
        time.monotonic() - t0,
    )
    return table
