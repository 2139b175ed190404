"""The encode stage's resume cache: latents and text embeddings already made, kept OUTSIDE the
rule's outputs (``{results}/cache/encode/{shard}/``).

Snakemake deletes a job's outputs before it runs the job again, so a killed or re-selected shard
would re-encode every clip if the arrays lived only in ``latents/``. Each clip's latents are
therefore written here as soon as its batch is done (atomically: a killed job leaves no half
file), named by a key of everything that determines them: the source file's content hash, the
frame indices, the crop and size, the VAE's identity, revision, dtype, sampling and normalisation,
and the storage dtype. A rerun links the clips whose key is present into the new output and
encodes only the rest; when every clip and prompt is present, no model is loaded.

Text embeddings are kept per prompt (``{key}.npz``, key: the encoder's settings and the prompt),
with the encoder's record beside them, so a rerun whose prompts are all present does not load
the text encoder either. Files whose key no longer matches are never read again; the folder may
be deleted at any time (``clipsift`` never needs it to be complete).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..captioners.base import stable_hash
from ..io.atomic import atomic_path

log = logging.getLogger(__name__)

# what a VAE's record holds that does not change its latents (timings, local paths)
_VOLATILE = {"load_s", "path", "local_path"}


def model_identity(info: dict) -> dict:
    """A model's record without what does not change its output; a local folder's revision
    hashes only its config files, so its weight files' sizes and times are added."""
    ident = {k: v for k, v in info.items() if k not in _VOLATILE}
    root = info.get("id")
    if isinstance(root, str) and os.path.isdir(root):
        root = Path(root) / (info.get("subfolder") or "")
        ident["weights"] = sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")
            if p.suffix in (".safetensors", ".bin", ".pt", ".pth")
        )
    return ident


class EncodeCache:
    """``{clip_id}.{key}.npy`` latents; ``text.{key}.npz`` embeddings; ``text.{key}.json``
    encoder records. ``folder=None`` turns the cache off (every lookup misses, nothing kept)."""

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = Path(folder) if folder else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            # a killed job's temporary files (atomic_path's hidden names): one encode job
            # writes a shard's cache at a time, so nothing else owns them
            for stale in self.folder.glob(".*"):
                if stale.is_file():
                    stale.unlink(missing_ok=True)
        self.hits = {"latents": 0, "text": 0}

    # ------------------------------------------------------------------ latents

    def latent_key(self, vinfo: dict, store: str, source_id: str, indices, rect, size) -> str:
        return stable_hash(
            {"vae": model_identity(vinfo), "store": store, "source": source_id,
             "indices": [int(i) for i in indices], "rect": [int(v) for v in rect],
             "size": [int(v) for v in size]},
            n=20,
        )  # fmt: skip

    def latent_path(self, clip_id: str, key: str) -> Path | None:
        if self.folder is None:
            return None
        path = self.folder / f"{clip_id}.{key}.npy"
        return path if path.exists() else None

    def save_latent(self, clip_id: str, key: str, arr: np.ndarray) -> Path | None:
        if self.folder is None:
            return None
        dest = self.folder / f"{clip_id}.{key}.npy"
        with atomic_path(dest) as tmp:
            np.save(tmp, arr)
        return dest

    # ------------------------------------------------------------------ text

    def text_key(self, tcfg: dict, prompt: str) -> str:
        return stable_hash({"encoder": tcfg, "prompt": prompt}, n=20)

    def encoder_key(self, tcfg: dict) -> str:
        return stable_hash({"encoder": tcfg}, n=20)

    def text(self, key: str) -> dict | None:
        """``{"embeds", "mask", ["pooled"], "n_tokens", "truncated"}`` or None."""
        if self.folder is None or not (self.folder / f"text.{key}.npz").exists():
            return None
        try:
            with np.load(self.folder / f"text.{key}.npz") as z:
                res = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            log.warning("unreadable cached embedding %s: %s", key, exc)
            return None
        res["n_tokens"] = int(res["n_tokens"])
        res["truncated"] = bool(res["truncated"])
        return res

    def save_text(self, key: str, res: dict) -> None:
        if self.folder is None:
            return
        arrays = {k: np.asarray(v) for k, v in res.items() if k in ("embeds", "mask", "pooled")}
        with atomic_path(self.folder / f"text.{key}.npz") as tmp:  # tmp ends in .npz
            np.savez(tmp, **arrays, n_tokens=int(res["n_tokens"]), truncated=bool(res["truncated"]))

    def encoder_info(self, key: str) -> dict | None:
        if self.folder is None or not (self.folder / f"text.{key}.json").exists():
            return None
        try:
            return json.loads((self.folder / f"text.{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def save_encoder_info(self, key: str, info: dict) -> None:
        if self.folder is None:
            return
        with atomic_path(self.folder / f"text.{key}.json") as tmp:
            tmp.write_text(json.dumps(info, sort_keys=True, default=str))
