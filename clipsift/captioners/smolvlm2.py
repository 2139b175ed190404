"""SmolVLM2 (``SmolVLMForConditionalGeneration``, HuggingFaceTB/SmolVLM2-*-Video-Instruct).

Video inputs (what ``SmolVLMVideoProcessor`` + ``SmolVLMProcessor`` give): each frame is resized
to a square of ``max_image_size.longest_edge`` (aspect not kept), rescaled and normalised, and
the batch is padded to the longest clip with empty frames (``pixel_attention_mask`` 0). The prompt
replaces ``<video>`` with an intro, then for each frame ``\\nFrame from MM:SS:`` and the frame's
image tokens (``<fake_token_around_image><global-img><image>*image_seq_len<fake_token_around_image>``),
then a blank line. For videos the processor renders its own default chat template.

The ``images`` path sends the frames through the image processor as one multi-image sample per
clip with image splitting off (the square resize is the same), and builds the same prompt.
``max_side`` does not apply: the frame size is the model's. Clips are batched with clips of the
same frame count (no padding frames).
"""

from __future__ import annotations

from datetime import timedelta

from .base import ClipJob
from .local import HALF, LocalVLM, Video

INTRO = "You are provided the following series of {frame_count} frames from a {video_duration} [H:MM:SS] video.\n"
OUTRO = "\n\n"
FRAME = "\nFrame from {timestamp}:"

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    """English number words as ``num2words`` writes them (``num2words`` itself when installed)."""
    try:
        from num2words import num2words

        return num2words(n)
    except ImportError:
        pass
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))
    return str(n)


class SmolVLM2(LocalVLM):
    name = "smolvlm2"
    model_class = "SmolVLMForConditionalGeneration"
    prompt_times = True  # "Frame from MM:SS" before each frame
    video_token = "<video>"
    image_token = "<image>"
    fake_image_token = "<fake_token_around_image>"
    global_image_token = "<global-img>"
    video_defaults = {
        "size": {"longest_edge": 4 * 364},
        "max_image_size": {"longest_edge": 364},
        "image_mean": HALF,
        "image_std": HALF,
        "rescale_factor": 1 / 255,
    }

    def frame_size(self, job: ClipJob, n_frames: int) -> tuple[int, int]:
        side = int(self.video_cfg["max_image_size"]["longest_edge"])
        return side, side

    def batch_key(self, plan):
        # One frame count per batch. Padding frames would cost compute, and SmolVLMProcessor
        # counts the padded frames in a shorter clip's intro ("series of six frames" for four),
        # which would make a caption depend on its batch.
        return len(plan.times)

    def load(self) -> None:
        super().load()
        n = self.processor_config().get("image_seq_len")
        if not n:
            c = self.model.config
            n = (c.vision_config.image_size // c.vision_config.patch_size) ** 2 // c.scale_factor**2
        self.image_seq_len = int(n)

    def template_for_images_path(self) -> str:
        # SmolVLMProcessor.apply_chat_template renders videos with its default template
        from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

        return DEFAULT_CHAT_TEMPLATE

    def video_prompt(self, video: Video) -> str:
        image = (
            self.fake_image_token
            + self.global_image_token
            + self.image_token * self.image_seq_len
            + self.fake_image_token
        )
        m = video.metadata
        duration = (
            int(m["duration"]) if m.get("duration") is not None else int(video.timestamps[-1])
        )
        text = INTRO.format(
            frame_count=number_words(len(video.frames)),
            video_duration=str(timedelta(seconds=duration)),
        )
        for sec in video.timestamps:
            text += FRAME.format(timestamp=f"{int(sec // 60):02d}:{int(sec % 60):02d}") + image
        return text + OUTRO

    def processor_videos(self, videos: list[Video]) -> tuple[list, list]:
        # nested per prompt, as SmolVLMProcessor documents: transformers 5.17 counts each
        # prompt's videos as len(videos[i]) (a flat list counted a clip's frames as videos and
        # failed every clip); 5.24 flattens the nesting
        frames, metadata = super().processor_videos(videos)
        return [[f] for f in frames], [[m] for m in metadata]

    def video_tensors(self, videos: list[Video]):
        side = int(self.video_cfg["max_image_size"]["longest_edge"])
        out = self.image_processor(
            images=[list(v.frames) for v in videos],
            do_image_splitting=False,
            do_resize=True,
            size={"longest_edge": side},
            max_image_size={"longest_edge": side},
            image_mean=self.video_cfg.get("image_mean"),
            image_std=self.video_cfg.get("image_std"),
            rescale_factor=self.video_cfg.get("rescale_factor", 1 / 255),
            do_pad=True,
            return_tensors="pt",
        )
        tensors = {"pixel_values": out["pixel_values"]}
        if "pixel_attention_mask" in out:
            tensors["pixel_attention_mask"] = out["pixel_attention_mask"]
        return tensors, [self.video_prompt(v) for v in videos]
