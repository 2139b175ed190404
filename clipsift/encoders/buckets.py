"""Which size a clip is encoded at, and the crop of the source frame that gets there.

``encode.resolution`` gives, in order of precedence:

- ``size: [height, width]``: one fixed size for every clip;
- ``buckets: [[height, width], ...]``: an explicit list of bucket sizes;
- ``bucket: N`` with ``aspect_ratios``: one bucket per ratio, of area about ``N * N`` (960 ->
  1280x720 at 16:9: 720p; 720 -> 960x540 before rounding; 480 -> 640x360 before rounding);
- ``bucket: N`` with ``grid_max_ratio``: HunyuanVideo's crop-size list (its
  ``hyvideo/hyvae_extract/dataset.py``, ``generate_crop_size_list``): every ``w x h`` on the
  ``multiple`` grid with at most ``(N / multiple)²`` cells and an aspect ratio within
  ``grid_max_ratio``, in that tool's order; a clip goes to the bucket whose ratio is nearest in
  plain difference, the first on a tie (its ``get_closest_ratio``).

Every side is a multiple of ``multiple`` (the VAE's spatial compression times the transformer's
patch: 16 for Wan 2.1, HunyuanVideo and CogVideoX, 32 for Wan 2.2 and LTX-Video): fixed and
listed sizes are rounded to the nearest multiple, generated buckets take the pair of multiples
that best keeps both the aspect ratio and the area (:func:`bucket_size`). A clip goes to the bucket nearest its aspect ratio (in log ratio, so 2:1 and 1:2
are equally far from 1:1), after its black borders are cropped: ``technical.crop`` from
``scores.parquet`` when present (``use_border_crop``). Its picture is then centre-cropped to the
bucket's aspect ratio and resized to the bucket (one resize, area interpolation when shrinking).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    width: int
    height: int
    name: str = ""  # the aspect ratio it was made for ("16:9"), or "fixed" / "list"

    @property
    def ratio(self) -> float:
        return self.width / self.height

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}"


def round_to(x: float, multiple: int) -> int:
    """Nearest multiple (ties go down), never below ``multiple``."""
    return max(multiple, int(math.ceil(x / multiple - 0.5)) * multiple)


def parse_ratio(text: str | float | int) -> float:
    """``"16:9"``, ``"16/9"`` or a number -> width / height."""
    if isinstance(text, (int, float)):
        return float(text)
    for sep in (":", "/", "x"):
        if sep in text:
            w, h = text.split(sep)
            return float(w) / float(h)
    return float(text)


def make_buckets(cfg: dict, multiple: int) -> list[Bucket]:
    """The buckets of ``cfg`` (the ``encode.resolution`` section) at ``multiple``."""
    if cfg.get("size"):
        h, w = cfg["size"]
        return [Bucket(round_to(w, multiple), round_to(h, multiple), "fixed")]
    if cfg.get("buckets"):
        return [
            Bucket(round_to(w, multiple), round_to(h, multiple), "list") for h, w in cfg["buckets"]
        ]
    base = float(cfg["bucket"])
    if cfg.get("grid_max_ratio"):
        return grid_buckets(base, multiple, float(cfg["grid_max_ratio"]))
    out: dict[tuple[int, int], Bucket] = {}
    for r in cfg["aspect_ratios"]:
        w, h = bucket_size(base, parse_ratio(r), multiple)
        out.setdefault((w, h), Bucket(w, h, str(r)))
    return list(out.values())


def bucket_size(base: float, ratio: float, multiple: int) -> tuple[int, int]:
    """``(width, height)`` in multiples of ``multiple`` nearest aspect ``ratio`` at area
    ``base * base``: of the multiples just below and above the exact sides, the pair with the
    smallest ``|log aspect error| + |log area error| / 2`` (exact sides win when they are
    multiples: 960 at 16:9 and 16 gives 1280x720)."""
    w0, h0 = base * math.sqrt(ratio), base / math.sqrt(ratio)

    def around(x: float) -> list[int]:
        lo = max(multiple, int(math.floor(x / multiple)) * multiple)
        return sorted({lo, lo + multiple} if lo < x else {lo})

    def cost(wh: tuple[int, int]) -> tuple[float, int, int]:
        w, h = wh
        err = abs(math.log(w / h / ratio)) + 0.5 * abs(math.log(w * h / (base * base)))
        return (round(err, 12), w * h, w)

    return min(((w, h) for w in around(w0) for h in around(h0)), key=cost)


GRID = "grid"  # the name of grid buckets: matched by plain ratio difference, as their tool does


def grid_buckets(base: float, multiple: int, max_ratio: float) -> list[Bucket]:
    """Every ``(w, h)`` in grid cells of ``multiple`` with ``w * h <= round((base / multiple)²)``
    cells, walked from the widest down as HunyuanVideo's ``generate_crop_size_list`` walks them,
    keeping those with an aspect ratio within ``max_ratio``."""
    cells = round((base / multiple) ** 2)
    out, wp, hp = [], cells, 1
    while wp > 0:
        if max(wp, hp) / min(wp, hp) <= max_ratio:
            out.append(Bucket(wp * multiple, hp * multiple, GRID))
        if (hp + 1) * wp <= cells:
            hp += 1
        else:
            wp -= 1
    return out


def nearest_bucket(width: int, height: int, buckets: list[Bucket]) -> Bucket:
    """The bucket nearest ``width / height`` in log aspect ratio (the first on a tie); grid
    buckets by plain ratio difference, as the tool they reproduce picks."""
    if buckets and buckets[0].name == GRID:
        r = width / height
        return min(buckets, key=lambda b: abs(b.ratio - r))
    r = math.log(width / height)
    return min(buckets, key=lambda b: abs(math.log(b.ratio) - r))


def centre_crop(rect: tuple[int, int, int, int], ratio: float) -> tuple[int, int, int, int]:
    """The largest centred ``[x, y, w, h]`` of aspect ``ratio`` inside ``rect``."""
    x, y, w, h = rect
    if w / h > ratio:  # too wide: cut the sides
        cw = max(1, min(w, int(round(h * ratio))))
        return (x + (w - cw) // 2, y, cw, h)
    ch = max(1, min(h, int(round(w / ratio))))
    return (x, y + (h - ch) // 2, w, ch)


def picture_rect(width: int, height: int, crop) -> tuple[tuple[int, int, int, int], bool]:
    """The picture area ``[x, y, w, h]`` of a ``width x height`` frame: ``crop`` (black borders
    removed) when it is a usable rectangle inside the frame, else the whole frame; and whether
    the border crop was used."""
    full = (0, 0, int(width), int(height))
    if crop is None:
        return full, False
    try:
        x, y, w, h = (int(v) for v in crop)
    except (TypeError, ValueError):
        return full, False
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        return full, False
    return (x, y, w, h), (x, y, w, h) != full


@dataclass(frozen=True)
class Geometry:
    """Where one clip's frames come from and where they go."""

    bucket: Bucket
    picture: tuple[int, int, int, int]  # after the border crop
    rect: tuple[int, int, int, int]  # the source rectangle resized to the bucket
    border_crop: bool  # technical.crop was applied
    scale: float  # bucket width / rect width (>1: upscaled)


def clip_geometry(width: int, height: int, crop, buckets: list[Bucket], use_crop=True) -> Geometry:
    picture, used = picture_rect(width, height, crop if use_crop else None)
    bucket = nearest_bucket(picture[2], picture[3], buckets)
    rect = centre_crop(picture, bucket.ratio)
    return Geometry(bucket, picture, rect, used, bucket.width / rect[2])
