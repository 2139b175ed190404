"""HDR (PQ and HLG) pictures as SDR BT.709, for every colour picture a model or a clip file gets.

Phones record HLG (BT.2020 primaries, the ARIB STD-B67 curve) and HDR masters are PQ (SMPTE ST
2084). Converted to RGB as they are coded, such frames look flat and washed out (the curve is
not a display gamma) and desaturated (BT.2020 primaries read as BT.709): a captioner describes,
and a VAE encodes, a picture no viewer saw. :func:`to_sdr` maps them the way ITU-R BT.2408
places SDR in HDR, so SDR-looking content comes back as it was graded:

1. the signal to display light in cd/m2: PQ's EOTF; HLG's inverse OETF, then its OOTF for a
   1000 cd/m2 display (system gamma 1.2);
2. BT.2020 to BT.709 primaries (linear light; a stream tagged BT.709 primaries keeps them);
3. HDR reference white (203 cd/m2, BT.2408) to SDR white, and the light above 80 % of it
   rolled off smoothly into the top of the range, reaching white at the brightest value the
   stream can hold (:func:`roll_off`, on each pixel's largest component so hues keep their
   ratios); below that nothing changes, so midtones and skin keep their graded levels (HDR
   reference white itself comes out at 90 % of SDR white's light, code 244);
4. BT.1886's display gamma (2.4) inverted, as SDR video is coded.

The scan's luma measures (``technical.*``, flashes) read the Y plane through
:func:`sdr_luma_table`, the same mapping of a neutral grey, so a threshold in SDR levels means the
same for an HDR source; the scan's detector, transition finder and flow keep the coded planes
(an edit blends the coded signal, and a blend stays linear there).
"""

from __future__ import annotations

import functools

import av
import cv2
import numpy as np

PQ, HLG = 16, 18  # FFmpeg's AVColorTransferCharacteristic codes
BT709, BT2020 = 1, 9  # its AVColorPrimaries codes (any other is taken as BT.2020)
REFERENCE_WHITE = 203.0  # cd/m2: HDR reference (graphics) white, BT.2408; SDR white maps here
HLG_PEAK = 1000.0  # cd/m2: the nominal display the HLG OOTF is taken for
KNEE = 0.8  # of SDR white: where the highlight roll-off starts


def _rgb_to_xyz(primaries: tuple, white=(0.3127, 0.3290)) -> np.ndarray:
    """Linear RGB to CIE XYZ for red, green and blue chromaticities ``primaries`` and a D65
    white: the primaries' XYZ columns, scaled so that RGB 1, 1, 1 is the white."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    wx, wy = white
    return xyz * np.linalg.solve(xyz, [wx / wy, 1.0, (1 - wx - wy) / wy])


# linear BT.2020 RGB to linear BT.709 RGB, from the primaries (BT.2087 rounds it to 4 digits)
BT2020_TO_BT709 = (
    np.linalg.inv(_rgb_to_xyz(((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))))
    @ _rgb_to_xyz(((0.708, 0.292), (0.170, 0.797), (0.131, 0.046)))
).astype(np.float32)
_LUMA_2020 = np.array([0.2627, 0.6780, 0.0593], np.float32)


# FFmpeg's AVColorTransferCharacteristic codes, by its names; 2 (unspecified) has none
_TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
              11: "iec61966-2-4", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
              16: "smpte2084", 18: "arib-std-b67"}  # fmt: skip
HDR_TRANSFERS = {_TRANSFERS[PQ]: "PQ", _TRANSFERS[HLG]: "HLG"}


def transfer_name(code) -> str | None:
    """A transfer characteristic code by FFmpeg's name (None: unspecified); ``smpte2084`` (PQ)
    and ``arib-std-b67`` (HLG) are HDR (:data:`HDR_TRANSFERS`)."""
    code = int(code or 2)
    return None if code == 2 else _TRANSFERS.get(code, f"trc-{code}")


def hdr_transfer(frame: av.VideoFrame) -> int | None:
    """``PQ`` or ``HLG`` when the frame is tagged with that transfer, else None (SDR)."""
    trc = int(frame.color_trc or 0)
    return trc if trc in (PQ, HLG) else None


def pq_eotf(e: np.ndarray) -> np.ndarray:
    """PQ signal (0-1) to display light in cd/m2 (SMPTE ST 2084)."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    p = np.power(np.clip(e, 0.0, 1.0), 1 / m2)
    return 10000.0 * np.power(np.maximum(p - c1, 0.0) / (c2 - c3 * p), 1 / m1)


def hlg_inverse_oetf(e: np.ndarray) -> np.ndarray:
    """HLG signal (0-1) to scene light (0-1) (BT.2100)."""
    a, b = 0.17883277, 0.28466892
    c = 0.5 - a * np.log(4 * a)
    e = np.clip(e, 0.0, 1.0)
    return np.where(e <= 0.5, e * e / 3, (np.exp((e - c) / a) + b) / 12)


def roll_off(x: np.ndarray, peak: float) -> np.ndarray:
    """Relative light (1.0: SDR white) into 0-1: unchanged up to ``KNEE``; above it, extended
    Reinhard on the distance past the knee, which leaves the knee with slope 1 and reaches 1.0
    exactly at ``peak`` (the brightest the stream can code), so highlights keep their order and
    some gradation instead of clipping at white."""
    span = np.float32(1.0 - KNEE)
    t = np.maximum(x - np.float32(KNEE), 0.0) / span
    w2 = np.float32(((peak - KNEE) / span) ** 2)
    # below the knee t is 0 and this is x itself
    return np.minimum(x, np.float32(KNEE)) + span * t * (1.0 + t / w2) / (1.0 + t)


@functools.cache
def _signal_to_light(transfer: int) -> np.ndarray:
    """Per 16-bit code, float32: display light relative to HDR reference white (PQ), or scene
    light (HLG, whose display light depends on the pixel's luminance: :func:`to_sdr`)."""
    e = np.arange(65536, dtype=np.float64) / 65535
    table = pq_eotf(e) / REFERENCE_WHITE if transfer == PQ else hlg_inverse_oetf(e)
    return table.astype(np.float32)


@functools.cache
def _gamma_table() -> np.ndarray:
    """Linear 0-1 in 65536 steps to BT.1886-coded 8-bit (gamma 1 / 2.4); fine steps, as the
    curve is steep near black (4096 steps made the first code 8)."""
    lin = np.linspace(0.0, 1.0, 65536)
    return np.round(255 * np.power(lin, 1 / 2.4)).astype(np.uint8)


def to_sdr(rgb16: np.ndarray, transfer: int, primaries: int = BT2020) -> np.ndarray:
    """An HDR frame's RGB as coded (uint16, the ``transfer`` curve, ``primaries`` by FFmpeg's
    code: BT.2020, or BT.709 left as they are) as SDR BT.709 RGB, uint8 (see the module
    notes)."""
    light = _signal_to_light(transfer)[rgb16]  # (H, W, 3) float32
    if transfer == HLG:
        # OOTF: display light = peak * Ys ** (gamma - 1) * E, Ys the scene luminance
        ys = cv2.transform(light, _LUMA_2020[None])
        light *= ((HLG_PEAK / REFERENCE_WHITE) * np.power(np.maximum(ys, 1e-6), 0.2))[..., None]
        peak = HLG_PEAK / REFERENCE_WHITE
    else:
        peak = 10000.0 / REFERENCE_WHITE
    rel = cv2.transform(light, BT2020_TO_BT709) if primaries != BT709 else light
    np.maximum(rel, 0.0, out=rel)
    top = np.maximum(np.maximum(rel[..., 0], rel[..., 1]), rel[..., 2])  # max(axis=2) is slow
    rel *= (roll_off(top, peak) / np.maximum(top, np.float32(1e-6)))[..., None]
    np.minimum(rel, 1.0, out=rel)
    return _gamma_table()[(rel * 65535 + 0.5).astype(np.uint16)]


@functools.cache
def sdr_luma_table(transfer: int) -> np.ndarray:
    """Per 8-bit limited-range luma code of an HDR frame, the luma (same scale) of its SDR
    picture: each code as a neutral grey through :func:`to_sdr`. 256 uint8 entries, for
    ``cv2.LUT``. Exact for greys; a colour's own luma moves a little differently (the tone map
    works on its largest component), which a scene's mean hardly sees. Codes below black (16)
    come out black, as the signal clips there."""
    e = np.clip((np.arange(256, dtype=np.float64) - 16) / 219, 0.0, 1.0)
    grey = np.repeat(np.round(e * 65535).astype(np.uint16)[None, :, None], 3, axis=2)
    sdr = to_sdr(grey, transfer, BT709)[0, :, 0].astype(np.float64)
    return np.round(16 + sdr * 219 / 255).astype(np.uint8)
