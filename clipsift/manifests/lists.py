"""Video-caption lists over the clip files (no latents): ``conversation.json``,
``easyanimate.json``, ``prompts.txt`` + ``videos.txt``. Paths are relative to the manifests
folder (``paths: relative``): the root these loaders join them with.

- ``easyanimate.json``: what aigc-apps/EasyAnimate reads (checked at commit
  c2a70d17daa1549a22129d0cd0e02053ecccd75c), ``easyanimate/data/dataset_image_video.py``,
  ``ImageVideoDataset.__init__``/``get_batch``: a JSON list of ``{"file_path", "text", "type"}``,
  ``file_path`` joined with ``--train_data_dir`` (give it this folder), ``type`` ``"video"``
  (the default is ``"image"``); ``width``/``height`` spare ``easyanimate/data/bucket_sampler.py``
  (``AspectRatioBatchImageVideoSampler``) a probe of every file when ``--enable_bucket`` is on.
  The trainer decodes and encodes the videos itself: it reads no latents.
- ``conversation.json``: LLaVA-style ``[{"id", "video", "conversations": [human, gpt]}]`` (the
  caption is the second turn, which is where OmniVideo's step 1 takes it from).
- ``prompts.txt`` + ``videos.txt``: one clip per line, the same order (the diffusers /
  finetrainers text-file layout, joined with ``data_root``); newlines in a caption become spaces.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Context


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _int(v) -> int | None:
    try:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
    except (TypeError, ValueError):
        return None


def easyanimate_entry(file_path: str, text: str, width=None, height=None) -> dict:
    entry = {"file_path": file_path, "text": text, "type": "video"}
    if _int(width) and _int(height):
        entry |= {"width": _int(width), "height": _int(height)}
    return entry


def write_conversation(items: list[dict], ctx: Context) -> None:
    question = ctx.cfg["question"]
    conv = [
        {
            "id": it["clip_id"],
            "video": ctx.ref(it["video_file"], ctx.final),
            "conversations": [
                {"from": "human", "value": question},
                {"from": "gpt", "value": it["prompt"] or ""},
            ],
        }
        for it in items
    ]
    (ctx.out_dir / "conversation.json").write_text(json.dumps(conv, indent=1) + "\n")


def write_easyanimate(items: list[dict], ctx: Context) -> None:
    easy = [
        easyanimate_entry(
            ctx.ref(it["video_file"], ctx.final),
            it["prompt"] or "",
            it.get("file_width"),
            it.get("file_height"),
        )
        for it in items
    ]
    (ctx.out_dir / "easyanimate.json").write_text(json.dumps(easy, indent=1) + "\n")


def write_text_files(items: list[dict], ctx: Context) -> None:
    (ctx.out_dir / "prompts.txt").write_text("".join(f"{one_line(it['prompt'])}\n" for it in items))
    (ctx.out_dir / "videos.txt").write_text(
        "".join(f"{ctx.ref(it['video_file'], ctx.final)}\n" for it in items)
    )
