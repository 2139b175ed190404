"""Trainer manifests over the encoded clips.

The clip video files come from rule ``export_clips`` (clipsift/export.py): its per-shard index
(``results/dataset/clips/{shard}.parquet``: ``clip_id``, ``video_id``, ``file``, ``error``)
says where each kept clip's file is; a clip without a file is left out of the manifests.

:func:`write_manifests` (rule ``manifests``, once) writes: ``results/dataset/manifests/`` with

   - ``hunyuan/``: the HunyuanVideo training layout: ``{id}.npy`` (the latents, linked),
     ``json_path/{id}.json`` and ``meta_file.list`` (one JSON path per line). Each JSON has
     ``video_id`` (the clip id: the trainer's sample id), ``source_video_id``, ``latent_shape``,
     ``video_path``, ``prompt``, ``raw_caption`` (``{"long caption": prompt}``),
     ``npy_save_path`` and the text-embedding files (linked beside the latents);
   - ``conversation.json``: ``[{"id", "video", "conversations": [human question, gpt caption]}]``
     (LLaVA-style video conversations);
   - ``easyanimate.json``: ``[{"file_path", "text", "type": "video"}]``;
   - ``prompts.txt`` + ``videos.txt``: one clip per line, the same order (the diffusers /
     finetrainers text-file layout); newlines inside a caption become spaces.

Paths inside a manifest are relative to the folder of the file that names them (``paths:
relative``, portable: the dataset folder can move or be published) or absolute.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def place(src: str | os.PathLike, dest: str | os.PathLike, how: str = "hardlink") -> str:
    """Put ``src`` at ``dest`` by ``how`` (hardlink, symlink or copy); a hard link that the file
    system refuses becomes a copy. Returns what was done."""
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() or dest.is_symlink():
        dest.unlink()
    if how == "symlink":
        dest.symlink_to(src.resolve())
        return "symlink"
    if how == "hardlink":
        try:
            os.link(src, dest)
            return "hardlink"
        except OSError:
            pass
    shutil.copy2(src, dest)
    return "copy"


def ok_rows(latents: pd.DataFrame) -> pd.DataFrame:
    return latents[latents["status"] == "ok"]


# ----------------------------------------------------------------------------- manifests


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def write_manifests(
    latents: list[pd.DataFrame], clip_files: list[pd.DataFrame], out_dir, cfg: dict
) -> dict:
    """Every manifest over the encoded clips of all shards, into ``out_dir`` (an empty folder
    that the caller swaps into place: paths are computed for ``final_dir = out_dir``'s final
    name, given as ``cfg["final_dir"]`` when it differs). Returns counts per manifest."""
    out_dir = Path(out_dir)
    final = Path(cfg.get("final_dir") or out_dir).absolute()
    absolute = cfg.get("paths", "relative") == "absolute"
    how = cfg.get("link", "hardlink")

    def ref(path, base: Path) -> str:
        """``path`` as named from a file in ``base`` (a folder under ``final``)."""
        p = Path(path).absolute()
        return os.fspath(p) if absolute else os.path.relpath(p, base)

    lat = pd.concat([ok_rows(t) for t in latents], ignore_index=True) if latents else None
    files = pd.concat(clip_files, ignore_index=True) if clip_files else None
    items = []
    if lat is not None and len(lat) and files is not None and len(files):
        # ``file`` is relative to the dataset folder, the manifests folder's parent
        ok = files[files["error"].isna()].set_index("clip_id")["file"]
        videos = {cid: final.parent / f for cid, f in ok.items()}
        for rec in lat.sort_values("clip_id").to_dict("records"):
            if rec["clip_id"] in videos:
                items.append(rec | {"video_file": videos[rec["clip_id"]]})
    hy = out_dir / "hunyuan"
    (hy / "json_path").mkdir(parents=True, exist_ok=True)
    meta_lines, conversation, easy, prompts, video_lines = [], [], [], [], []
    for it in items:
        cid, prompt = it["clip_id"], it["prompt"] or ""
        place(it["latent_path"], hy / f"{cid}.npy", how)
        text_files = {}
        for col, suffix in (
            ("text_path", "text"),
            ("text_mask_path", "text_mask"),
            ("text_pooled_path", "text_pooled"),
            ("text_2_path", "text_2"),
            ("text_2_mask_path", "text_2_mask"),
            ("text_2_pooled_path", "text_2_pooled"),
        ):
            if isinstance(it.get(col), str):
                place(it[col], hy / f"{cid}.{suffix}.npy", how)
                text_files[f"{suffix}_npy_path"] = ref(
                    final / "hunyuan" / f"{cid}.{suffix}.npy", final / "hunyuan" / "json_path"
                )
        jdir = final / "hunyuan" / "json_path"
        doc = {
            "video_id": cid,
            "clip_id": cid,
            "source_video_id": it["video_id"],
            "latent_shape": [int(v) for v in it["latent_shape"]],
            "video_path": ref(it["video_file"], jdir),
            "prompt": prompt,
            "raw_caption": {"long caption": prompt},
            "prompt_source": it["prompt_source"],
            "npy_save_path": ref(final / "hunyuan" / f"{cid}.npy", jdir),
            **text_files,
            "num_frames": int(it["frames"]),
            "fps": float(it["sample_fps"]),
            "height": int(it["height"]),
            "width": int(it["width"]),
            "bucket": it["bucket"],
            "vae": it["vae"],
            "vae_revision": it["vae_resolved_revision"],
        }
        (hy / "json_path" / f"{cid}.json").write_text(json.dumps(doc, indent=1) + "\n")
        meta_lines.append(ref(final / "hunyuan" / "json_path" / f"{cid}.json", final / "hunyuan"))
        video = ref(it["video_file"], final)
        conversation.append(
            {
                "id": cid,
                "video": video,
                "conversations": [
                    {
                        "from": "human",
                        "value": cfg.get("question", "<video>\nDescribe this video."),
                    },
                    {"from": "gpt", "value": prompt},
                ],
            }
        )
        easy.append({"file_path": video, "text": prompt, "type": "video"})
        prompts.append(one_line(prompt))
        video_lines.append(video)
    (hy / "meta_file.list").write_text("".join(f"{line}\n" for line in meta_lines))
    (out_dir / "conversation.json").write_text(json.dumps(conversation, indent=1) + "\n")
    (out_dir / "easyanimate.json").write_text(json.dumps(easy, indent=1) + "\n")
    (out_dir / "prompts.txt").write_text("".join(f"{p}\n" for p in prompts))
    (out_dir / "videos.txt").write_text("".join(f"{v}\n" for v in video_lines))
    counts = {"clips": len(items)}
    empty = sum(1 for p in prompts if not p.strip())
    if empty:
        check_empty_prompts(empty, len(items), cfg.get("empty_prompts", "warn"))
        counts["empty_prompts"] = empty
    log.info("manifests: %d clips", len(items))
    return counts


class EmptyPrompts(ValueError):
    pass


def check_empty_prompts(empty: int, total: int, policy: str) -> None:
    """A manifest line with no prompt trains the model on "": say so (``warn``), or stop
    (``error``); ``allow`` for unconditional training on purpose."""
    if policy == "allow":
        return
    msg = (
        f"{empty} of {total} manifest entries have an empty prompt: their clips have neither a "
        "caption (caption stage off, or it failed) nor a caption from the source. Turn the "
        "caption stage on, or set encode.manifests.empty_prompts: allow."
    )
    if policy == "error":
        raise EmptyPrompts(msg)
    log.warning("%s", msg)
