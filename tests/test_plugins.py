"""The one registry mechanism (clipsift.plugins): every family of every kind is an entry of a
Registry, every code entry loads, names fail with a close match, and the gpu resource of a rule
comes from the entry and the config's device, in one function.

Each family is also built from a tiny config through its registry in its own tests
(test_learned_scores, test_dover, test_unimatch, test_captions, test_encode, test_generate,
test_transitions for the detectors), which iterate over these registries.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from clipsift import captioners, encoders, filters, generators, scorers, sources, split
from clipsift.plugins import Plugin, Registry, UnknownPlugin, gpus_for

PACKAGE = Path(scorers.__file__).parents[1]
REGISTRIES = {
    "scorer": scorers.REGISTRY,
    "filter": filters.REGISTRY,
    "caption model": captioners.REGISTRY,
    "alignment model": captioners.ALIGNERS,
    "VAE": encoders.VAES,
    "text encoder": encoders.TEXT_ENCODERS,
    "scene detector": split.DETECTORS,
    "source type": sources.READERS,
    "generator": generators.REGISTRY,
}


def test_every_kind_is_a_registry_and_no_other_mechanism_exists():
    for kind, reg in REGISTRIES.items():
        assert isinstance(reg, Registry) and reg.kind == kind
    # "module:attribute" names are resolved in one place only
    others = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "plugins.py" and re.search(r"\bimport_module\(", p.read_text())
    ]
    assert others == []


@pytest.mark.parametrize(
    "kind,name",
    [(k, n) for k, reg in REGISTRIES.items() if k != "generator" for n in sorted(reg)],
)
def test_every_code_entry_loads(kind, name):
    from clipsift.captioners.local import LocalVLM
    from clipsift.encoders.base import VideoVAE
    from clipsift.encoders.text import TextEncoder

    entry = REGISTRIES[kind].entry(name)
    assert isinstance(entry, Plugin) and entry.device in ("cpu", "gpu")
    obj = entry.load()
    if kind == "scorer":
        assert list(inspect.signature(obj).parameters) == ["clips", "inputs", "cfg"]
    elif kind == "filter":
        assert isinstance(obj, filters.Measure) and obj.name == name and obj.tests
        assert all(t.column.startswith(f"{name}.") for t in obj.tests)
    elif kind == "caption model":
        assert issubclass(obj, LocalVLM)
    elif kind == "alignment model":
        assert callable(getattr(obj, "score_all", None)) and callable(obj.identity)
    elif kind == "VAE":
        assert issubclass(obj, VideoVAE)
    elif kind == "text encoder":
        assert issubclass(obj, TextEncoder)
    else:
        assert callable(obj)


def test_generators_are_data_entries():
    for name, gen in generators.REGISTRY.items():
        assert isinstance(gen, generators.Generator) and gen.name == name


def test_cpu_detectors_build_from_the_default_config_and_find_a_cut():
    from clipsift.config import validate_config

    scan = validate_config({"sources": [{"name": "v", "type": "folder", "path": "."}]})["scan"]
    for name in split.DETECTORS.on("cpu"):
        det = split.DETECTORS.load(name)({**scan, "detector": name}, 30.0)
        dark, bright = np.zeros((36, 64, 3), np.uint8), np.full((36, 64, 3), 230, np.uint8)
        for i in range(60):
            det.push(i, (dark if i < 30 else bright) + (i % 3))
        assert det.finish(60) == [(0, 30), (30, 60)], name


def test_unknown_names_fail_with_the_close_match():
    with pytest.raises(UnknownPlugin, match=r"unknown scorer 'aesthtic'; did you mean 'aesthetic'"):
        scorers.REGISTRY.entry("aesthtic")
    with pytest.raises(UnknownPlugin, match=r"known: cogvideox, hunyuan, ltx, wan2_1, wan2_2"):
        encoders.VAES.load("sdxl")
    reg = Registry("thing", {"a": Plugin("os.path:join")})
    reg.register("b", Plugin("os.path:basename"))
    assert reg.load("b")("x/y") == "y"
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", Plugin("os:getcwd"))


def test_the_gpu_resource_comes_from_the_entry_and_the_device():
    gpu, cpu = Plugin("m:f", "gpu"), Plugin("m:f", "cpu")
    assert gpus_for(gpu, "auto") == gpus_for(gpu, "cuda:1") == gpus_for(gpu, None) == 1
    assert gpus_for(gpu, "cpu") == gpus_for(cpu, "auto") == gpus_for(None, "auto") == 0
    # TransNetV2 is a model: the scan asks for a GPU for it unless it is pinned to the CPU
    assert split.DETECTORS.entry("transnetv2").device == "gpu"
    assert split.detector_device({"detector": "transnetv2", "transnetv2": {"device": "cpu"}})
    assert split.detector_device({"detector": "adaptive", "adaptive": {}}) is None


def test_only_scorers_that_write_embeddings_feed_near_duplicates():
    writes = {n for n, p in scorers.REGISTRY.items() if "embeddings" in p.gives}
    assert writes == {"aesthetic", "aesthetic_linear", "aesthetic_v2_5", "clip_iqa"}


# a filter as a package outside clipsift would add one: its measure, one registry entry
BLUR = filters.Measure(
    "blur",
    about="a blur filter",
    columns=(("blur.sharpness", lambda r: r.get("sharpness"), True),),
    tests=(filters.Test("sharp", "blur.sharpness", ">=", "min_sharpness"),),
)


def test_a_registered_filter_is_selected_calibrated_and_carded_like_the_builtins(monkeypatch):
    """Selection, calibration and the card know no filter by name: a new entry is judged by
    its tests, gets its verdict column and its what-if rows, and is named in the card."""
    import pandas as pd

    from clipsift import calibration, card, selection

    monkeypatch.setitem(filters.REGISTRY, "blur", Plugin(f"{__name__}:BLUR"))
    clips = pd.DataFrame(
        {"clip_id": ["a", "b", "c"], "video_id": "v", "duration": 3.0, "error": None,
         "split_reason": None}
    )  # fmt: skip
    records = {"blur": {"a": {"sharpness": 9.0}, "b": {"sharpness": 1.0}}}
    table = selection.clip_table(clips, pd.DataFrame(), records)
    assert table["blur.sharpness"].tolist()[:2] == [9.0, 1.0] and pd.isna(
        table["blur.sharpness"][2]
    )
    cfg = {
        "flash": {"enabled": False}, "ocr": {"enabled": False},
        "blur": {"enabled": True, "min_sharpness": 5.0, "record_only": False},
        "thresholds": {},
    }  # fmt: skip
    sel = selection.select(table, cfg)
    assert sel["keep"].tolist() == [True, False, False]
    assert sel["blur_verdict"].tolist() == ["pass", "fail", "fail"]
    assert sel["flash_verdict"].isna().all()
    assert [r["test"] for r in sel["rejections"][1]] == ["sharp"]
    whatif = calibration.whatif(table, cfg, [0.0, 1.0])
    assert set(whatif["bound"]) == {1.0, 5.0, 9.0} and set(whatif["test"]) == {"sharp"}
    assert whatif.set_index("bound").loc[1.0, "retention_overall"] == 2 / 3
    filters_cfg = {"flash": {"enabled": False}, "ocr": {"enabled": True}, "blur": {"enabled": True}}
    assert selection.with_filters(cfg | {"ocr": {}}, filters_cfg)["blur"]["enabled"] is True
    assert filters.enabled(filters_cfg) == ["ocr", "blur"]

    def thresholds(col):
        return {"filters": filters_cfg, "select": {"thresholds": {col: {"min": 1.0}}}}

    with pytest.raises(selection.ThresholdError, match="blur"):
        selection.check_thresholds(thresholds("blurr.x"))
    selection.check_thresholds(thresholds("blur.sharpness"))  # the columns its measure declares
    with pytest.raises(selection.ThresholdError, match="did you mean 'blur.sharpness'"):
        selection.check_thresholds(thresholds("blur.sharpnes"))
    steps = card.pipeline_steps({"filters": filters_cfg}, {})
    assert steps[:3] == ["scene splitting", "a burned-in text filter (OCR)", "a blur filter"]


def _video(path: Path, rgb: tuple[int, int, int], n: int = 30) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(n):
            img = np.zeros((64, 96, 3), np.uint8) + np.uint8(rgb)
            img[:, : 48 if i % 2 else 40] = 255 - np.uint8(rgb)  # some structure
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def test_the_worked_example_of_the_docs_runs_as_written(tmp_path, monkeypatch):
    """docs/plugins.md: its scorer module and registry line, as printed, scoring real clips."""
    import importlib.util
    import sys

    import pandas as pd

    text = (PACKAGE.parent / "docs" / "plugins.md").read_text()
    measure, module_src, registry_line = re.findall(r"```python\n(.*?)```", text, re.S)
    assert measure in (PACKAGE / "filters" / "flash.py").read_text()  # the filter shown is real
    name = "clipsift.scorers.colorfulness"
    (tmp_path / "colorfulness.py").write_text(module_src)
    spec = importlib.util.spec_from_file_location(name, tmp_path / "colorfulness.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    entry = eval("{" + registry_line.strip() + "}", {"Plugin": Plugin})  # noqa: S307
    for key, plugin in entry.items():
        monkeypatch.setitem(scorers.REGISTRY, key, plugin)

    paths = {
        "red": _video(tmp_path / "red.mp4", (200, 30, 40)),
        "grey": _video(tmp_path / "grey.mp4", (120, 120, 120)),
        "gone": tmp_path / "missing.mp4",
    }
    clips = pd.DataFrame(
        {"clip_id": list(paths), "path": [str(p) for p in paths.values()], "start_time": 0.0,
         "end_time": 1.0, "error": None, "split_reason": None}
    )  # fmt: skip
    out = scorers.run_scorer(
        "colorfulness", scorers.ShardInputs(clips, pd.DataFrame()), {"frames": 3}
    )
    by = out.set_index("clip_id")
    assert by.loc["red", "score"] > 30 > by.loc["grey", "score"] >= 0
    assert pd.isna(by.loc["gone", "score"]) and by.loc["gone", "error"]


def _scan_gpus(project: Path, scan: str) -> set[str]:
    from helpers import snakemake_cli

    res = snakemake_cli(project, "-n", "--cores", "2", "--config", f"scan={scan}")
    assert res.returncode == 0, res.stderr[-3000:]
    blocks = re.findall(r"^rule scan:\n(.*?)(?:\n\n|\Z)", res.stdout + res.stderr, re.S | re.M)
    assert blocks, res.stdout[-2000:]
    return {re.search(r"\bgpu=(\d)", b)[1] for b in blocks}


@pytest.mark.slow
def test_a_model_detector_makes_the_scan_ask_for_a_gpu(tmp_path, sample_set):
    """TransNetV2 is a GPU model: the scan job asks for a GPU for it (and takes its device
    through resolve_device, with a lock), unless scan.transnetv2.device pins it to the CPU."""
    from helpers import project_copy

    project = project_copy(tmp_path / "p", sample_set.dir)
    assert _scan_gpus(project, "{detector: transnetv2}") == {"1"}
    assert _scan_gpus(project, "{detector: transnetv2, transnetv2: {device: cpu}}") == {"0"}
    assert _scan_gpus(project, "{detector: adaptive}") == {"0"}
