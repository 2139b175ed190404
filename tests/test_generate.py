"""The generate source: prompt lists -> videos through diffusers pipelines, loaded by the real code.

Tiny random pipelines (``tests/fakes/tiny_pipelines.py``: CogVideoX text-to-video, Stable Video
Diffusion image-to-video, Stable Diffusion 3 and FLUX text-to-image, Wan when ``accelerate`` is
installed) are built from tiny configs, saved with ``save_pretrained`` and loaded back with
``Pipeline.from_pretrained(folder)`` by the stage itself. Assertions are on files, sizes, frame
counts, records, determinism and failures as data; never on what random weights draw.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fakes import tiny_pipelines as tiny
from helpers import REPO, base_config, count_frames, metadata, plan_shards, run_snakemake

from clipsift.generators import REGISTRY, GeneratorError, check_source
from clipsift.generators import pipeline as gp
from clipsift.generators.stage import generate_shard
from clipsift.generators.video import read_frames, write_mp4
from clipsift.plan import ITEM_COLUMNS
from clipsift.sources import SourceError, list_items, slug_id

W, H = 48, 32  # tiny frames: multiples of 16, even for yuv420p


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    """Tiny pipelines saved like Hub repos: {family: folder}."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gen_models")
    return {name: tiny.build(name, root / name) for name in ("cogvideox", "svd", "sd3")}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("gen_img") / "first.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(path)
    return path


def plan_rows(source: dict, root) -> pd.DataFrame:
    """The plan rows of a source's items (what the generate rule reads)."""
    items = list_items(source, root=root)
    rows = [
        {**it.to_row(), "source": source["name"], "extra": json.dumps(it.extra, sort_keys=True)}
        | {"kind": "prompt", "archive": None}
        for it in items
    ]
    return pd.DataFrame(rows)[ITEM_COLUMNS]


def gen_source(name, generator, model, prompts, **kw) -> dict:
    return {
        "name": name,
        "type": "generate",
        "path": str(prompts),
        "generator": generator,
        "model": str(model),
        "steps": 2,
        "width": W,
        "height": H,
        "device": "cpu",
        **kw,
    }


# ----------------------------------------------------------------------------- prompt lists


def test_prompt_lists_in_every_format(tmp_path, image):
    rows = [
        {"prompt": "a red car at night", "image": str(image), "style": "film", "n": 3},
        {"prompt": "a dog runs on grass", "image": "first.png"},
        {"prompt": "a red car at night"},  # listed twice: a second sample
    ]
    (tmp_path / "p.txt").write_text("# comment\na red car at night\n\na dog runs on grass\n")
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pd.DataFrame(rows).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet")
    src = {"name": "g", "type": "generate", "generator": "cogvideox"}

    txt = list_items({**src, "path": "p.txt"}, root=tmp_path)
    assert sorted(it.caption for it in txt) == ["a dog runs on grass", "a red car at night"]
    assert {it.uri for it in txt} == {f"prompt:{tmp_path / 'p.txt'}#{n}" for n in (2, 4)}
    assert all(it.path is None and it.extra == {"image": None} for it in txt)

    listed = {}
    for fmt in ("jsonl", "csv", "parquet"):
        items = list_items(
            {**src, "path": f"p.{fmt}", "image_key": "image", "base_dir": str(image.parent)},
            root=tmp_path,
        )
        listed[fmt] = {it.id: it for it in items}
        assert len(items) == 3
        by_caption = sorted((it.caption, it.extra["image"] or "") for it in items)
        # the image path is made absolute (base_dir); a row without one has None
        assert by_caption == [
            ("a dog runs on grass", str(image)),
            ("a red car at night", ""),
            ("a red car at night", str(image)),
        ]
    # ids: words of the prompt + hash of prompt and image; the same in every format; a repeat -2
    assert set(listed["jsonl"]) == set(listed["csv"]) == set(listed["parquet"])
    car = listed["jsonl"]
    assert all(i.startswith(("a_red_car_at_night-", "a_dog_runs_on_grass-")) for i in car)
    assert {it.extra.get("style") for it in car.values()} == {"film", None}
    # ids do not depend on the order of the list
    (tmp_path / "rev.jsonl").write_text("\n".join(json.dumps(r) for r in rows[1::-1]))
    rev = list_items(
        {**src, "path": "rev.jsonl", "image_key": "image", "base_dir": str(image.parent)},
        root=tmp_path,
    )
    assert len(rev) == 2 and {it.id for it in rev} <= set(car)
    # id_key: the given ids (file-name safe), a repeated one gets -2
    keyed = list_items({**src, "path": "p.jsonl", "id_key": "prompt"}, root=tmp_path)
    car_id, dog_id = slug_id("a red car at night"), slug_id("a dog runs on grass")
    assert sorted(it.id for it in keyed) == sorted([car_id, f"{car_id}-2", dog_id])


def test_prompt_list_errors(tmp_path):
    (tmp_path / "p.jsonl").write_text(json.dumps({"text": "no prompt column"}) + "\n")
    src = {"name": "g", "type": "generate", "generator": "cogvideox", "path": "p.jsonl"}
    with pytest.raises(SourceError, match="row 1 has no prompt"):
        list_items(src, root=tmp_path)
    assert list_items({**src, "prompt_key": "text"}, root=tmp_path)[0].caption == "no prompt column"
    with pytest.raises(SourceError, match="unknown generator 'sora'"):
        list_items({**src, "generator": "sora"}, root=tmp_path)
    with pytest.raises(SourceError, match="set `generator`"):
        list_items({k: v for k, v in src.items() if k != "generator"}, root=tmp_path)
    with pytest.raises(SourceError, match="first_frame needs a text-to-image generator"):
        list_items({**src, "t2i_as": "first_frame"}, root=tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        list_items({**src, "path": "nope.txt"}, root=tmp_path)


# ----------------------------------------------------------------------------- registry


def test_registry_and_presets():
    import diffusers
    from snakemake.utils import validate

    for name, gen in REGISTRY.items():
        assert gen.name == name and gen.kind in ("t2v", "i2v", "t2i")
        cls = getattr(diffusers, gen.pipeline)  # a real diffusers pipeline class
        d = gen.defaults
        assert gp.valid_frames(d["frames"], gen.frame_step) == d["frames"], name
        assert d["width"] % gen.size_multiple == 0 and d["height"] % gen.size_multiple == 0
        assert gen.pinned == (len(gen.revision) == 40), name
        # every argument we pass by name exists on the pipeline
        import inspect

        accepted = set(inspect.signature(cls.__call__).parameters)
        for param in ("prompt", "negative_prompt", "steps", "guidance", "frames", "fps"):
            arg = gen.arg(param)
            assert arg is None or arg in accepted, (name, param, arg)
        assert gen.kind != "i2v" or gen.arg("image") in accepted
        for comp in gen.components.values():
            assert hasattr(diffusers, comp["class"])
    presets = sorted((REPO / "config" / "presets").glob("generate-*.yaml"))
    assert len(presets) >= 4
    for path in presets:
        cfg = yaml.safe_load(path.read_text())
        validate(cfg, str(REPO / "config" / "schema.yaml"))
        for src in cfg["sources"]:
            if src["type"] == "generate":
                check_source(src)
                model, rev = src.get("model"), src.get("revision")
                assert model and rev and len(rev) in (4, 40), (path.name, model, rev)


def test_settings_make_counts_and_sizes_valid():
    cog = REGISTRY["cogvideox"]
    s = gp.settings({"frames": 50, "width": 730, "height": 470}, cog)
    assert (s.params["frames"], s.params["width"], s.params["height"]) == (49, 720, 464)
    assert (s.model, s.revision) == (cog.model, cog.revision)  # the pinned default
    assert gp.settings({"revision": "main"}, cog).revision == cog.revision
    assert gp.settings({"revision": "abc"}, cog).revision == "abc"
    assert gp.settings({"model": "/m"}, cog).revision == "main"
    assert gp.settings({"frames": 80}, REGISTRY["ltx"]).params["frames"] == 73
    assert gp.settings({"frames": 80}, REGISTRY["flux"]).params["frames"] == 1
    assert gp.settings({}, REGISTRY["svd"]).params == {
        "steps": 25, "guidance": 3.0, "width": 1024, "height": 576, "frames": 25, "fps": 7.0,
        "negative_prompt": None,
    }  # fmt: skip
    with pytest.raises(GeneratorError, match="unknown generator"):
        check_source({"name": "x", "generator": "nope"})


def test_item_seeds():
    s = gp.item_seed(0, "a_cat-1234")
    assert s == gp.item_seed(0, "a_cat-1234") and 0 <= s < 2**63
    assert len({gp.item_seed(0, "a"), gp.item_seed(0, "b"), gp.item_seed(1, "a")}) == 3


def test_write_mp4_is_deterministic(tmp_path):
    # x264's macroblock-tree rate control gave a different bitstream at almost every call
    frames = np.random.default_rng(0).integers(0, 255, (9, 64, 96, 3), dtype=np.uint8)
    outs = {write_mp4(tmp_path / f"{i}.mp4", frames, 8).read_bytes() for i in range(4)}
    assert len(outs) == 1


def test_write_mp4_roundtrip(tmp_path):
    frames = np.zeros((3, 32, 48, 3), np.uint8)
    frames[:, :, :24] = 200
    path = write_mp4(tmp_path / "v.mp4", frames, 8, metadata={"description": "a prompt"})
    back = read_frames(path)
    assert back.shape == frames.shape and np.abs(back.astype(int) - frames).max() <= 3
    import av

    with av.open(str(path)) as c:
        assert c.metadata.get("description") == "a prompt"
        assert float(c.streams.video[0].average_rate) == 8


# ----------------------------------------------------------------------------- generation


def test_same_seed_same_frames_other_id_other_seed(tmp_path, pipes):
    (tmp_path / "p.txt").write_text("a red car at night\na dog runs on grass\n")
    src = gen_source("t2v", "cogvideox", pipes["cogvideox"], tmp_path / "p.txt", frames=9, seed=7)
    plan = plan_rows(src, tmp_path)
    runs, files = [], []
    for k in range(2):  # separate caches: both runs really generate
        out = generate_shard(plan, src, out_dir=tmp_path / f"out{k}", cache_dir=tmp_path / f"c{k}")
        assert out["error"].isna().all() and list(out.columns) == [*ITEM_COLUMNS, "error"]
        runs.append({r["id"]: read_frames(r["path"]) for r in out.to_dict("records")})
        files.append({r["id"]: Path(r["path"]).read_bytes() for r in out.to_dict("records")})
        extras = [json.loads(e)["generate"] for e in out["extra"]]
    assert runs[0].keys() == runs[1].keys()
    assert files[0] == files[1]  # the same mp4 bytes, not only the same pixels
    for item_id in runs[0]:
        assert runs[0][item_id].shape == (9, H, W, 3)
        assert np.array_equal(runs[0][item_id], runs[1][item_id])
    a, b = runs[0].values()
    assert not np.array_equal(a, b)  # another id: another seed, another video
    seeds = {e["seed"] for e in extras}
    assert seeds == {gp.item_seed(7, i) for i in runs[0]} and len(seeds) == 2
    rec = extras[0]
    assert rec["generator"] == "cogvideox" and rec["pipeline"] == "CogVideoXPipeline"
    assert rec["model"] == str(pipes["cogvideox"]) and rec["resolved_revision"].startswith("local:")
    assert rec["params"]["steps"] == 2 and rec["frames"] == 9 and rec["global_seed"] == 7
    assert rec["latency_s"] > 0 and rec["dtype"] == "float32" and not rec["cached"]
    # another global seed changes every video; the cache answers a rerun without the model
    other = generate_shard(
        plan, {**src, "seed": 8}, out_dir=tmp_path / "out2", cache_dir=tmp_path / "c0"
    )
    for r in other.to_dict("records"):
        assert not np.array_equal(read_frames(r["path"]), runs[0][r["id"]])
    again = generate_shard(plan, src, out_dir=tmp_path / "out3", cache_dir=tmp_path / "c0")
    assert all(json.loads(e)["generate"]["cached"] for e in again["extra"])
    for r in again.to_dict("records"):
        assert np.array_equal(read_frames(r["path"]), runs[0][r["id"]])


def test_failed_items_are_rows_and_the_shard_goes_on(tmp_path, pipes, image):
    rows = [
        {"prompt": "a boat on a lake", "image": str(image)},
        {"prompt": "a train in snow", "image": "missing.png"},
        {"prompt": "no image at all"},
    ]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    src = gen_source("i2v", "svd", pipes["svd"], tmp_path / "p.jsonl", frames=4, image_key="image")
    out = generate_shard(
        plan_rows(src, tmp_path), src, out_dir=tmp_path / "o", cache_dir=tmp_path / "c"
    )
    by = {r["caption"]: r for r in out.to_dict("records")}
    assert read_frames(by["a boat on a lake"]["path"]).shape == (4, H, W, 3)
    assert pd.isna(by["a boat on a lake"]["error"])
    assert "image not found" in by["a train in snow"]["error"]
    assert "no image" in by["no image at all"]["error"]
    assert all(r["kind"] == "video" for r in by.values())
    # a config the pipeline cannot run fails every item: that stops the job
    bad = {**src, "pipeline_kwargs": {"no_such_argument": 1}}
    with pytest.raises(RuntimeError, match="no video made"):
        generate_shard(
            plan_rows(bad, tmp_path), bad, out_dir=tmp_path / "o2", cache_dir=tmp_path / "c2"
        )
    # a model that is not there stops the job too, with what to check
    missing = {**src, "model": str(tmp_path / "no_model")}
    with pytest.raises(RuntimeError, match="cannot load"):
        generate_shard(
            plan_rows(missing, tmp_path),
            missing,
            out_dir=tmp_path / "o3",
            cache_dir=tmp_path / "c3",
        )


def test_wan_text_to_video(tmp_path):
    pytest.importorskip("accelerate", reason="diffusers loads Wan's transformer only with it")
    model = tiny.build("wan", tmp_path / "wan")
    (tmp_path / "p.txt").write_text("a cat on a roof\n")
    src = gen_source("wan", "wan", model, tmp_path / "p.txt", frames=6)
    out = generate_shard(
        plan_rows(src, tmp_path), src, out_dir=tmp_path / "o", cache_dir=tmp_path / "c"
    )
    assert read_frames(out["path"][0]).shape == (5, H, W, 3)  # 6 -> 4k+1


def test_allegro_text_to_video(tmp_path):
    """Allegro (Dataflow-Gen's generator) from its tiny pipeline: loaded by from_pretrained,
    its VAE tiled (it decodes only tiled), an even frame count kept as it is."""
    model = tiny.build("allegro", tmp_path / "allegro")
    (tmp_path / "p.txt").write_text("a red kite over a beach\n")
    src = gen_source("allegro", "allegro", model, tmp_path / "p.txt", frames=8)
    out = generate_shard(
        plan_rows(src, tmp_path), src, out_dir=tmp_path / "o", cache_dir=tmp_path / "c"
    )
    assert out["error"].isna().all(), out["error"].tolist()
    assert read_frames(out["path"][0]).shape == (8, H, W, 3)
    record = json.loads(out["extra"][0])["generate"]
    assert record["memory"]["vae_tiling"] is True and record["pipeline"] == "AllegroPipeline"


def test_flux_first_frame_for_svd(tmp_path, pipes):
    flux = tiny.build("flux", tmp_path / "flux")
    (tmp_path / "p.txt").write_text("a lighthouse in fog\n")
    src = gen_source(
        "chain",
        "flux",
        flux,
        tmp_path / "p.txt",
        t2i_as="first_frame",
        i2v={"generator": "svd", "model": str(pipes["svd"]), "frames": 3, "steps": 2},
    )
    out = generate_shard(
        plan_rows(src, tmp_path), src, out_dir=tmp_path / "o", cache_dir=tmp_path / "c"
    )
    rec = json.loads(out["extra"][0])["generate"]
    assert read_frames(out["path"][0]).shape == (3, H, W, 3)
    assert rec["kind"] == "t2i+i2v" and rec["generator"] == "svd"
    first = rec["first_frame"]
    assert first["from"] == "flux" and first["model"] == str(flux)
    assert first["seed"] != rec["seed"]  # image and video draw their own noise
    from PIL import Image

    assert Image.open(first["image"]).size == (W, H)


def test_text_to_image_items_are_one_frame_videos(tmp_path, pipes):
    from clipsift.io.decode import probe

    (tmp_path / "p.txt").write_text("a bowl of fruit\n")
    src = gen_source("t2i", "sd3", pipes["sd3"], tmp_path / "p.txt")
    out = generate_shard(
        plan_rows(src, tmp_path), src, out_dir=tmp_path / "o", cache_dir=tmp_path / "c"
    )
    info = probe(out["path"][0])
    assert (info["n_frames"], info["width"], info["height"], info["fps"]) == (1, W, H, 1.0)
    assert info.get("error") is None
    assert json.loads(out["extra"][0])["generate"]["kind"] == "t2i"


def test_motion_score_of_a_shard_of_one_frame_videos():
    from types import SimpleNamespace

    from clipsift.scorers.motion import score_motion

    samples = pd.DataFrame({"video_id": ["v"], "frame": [0], "time": [0.0], "scale": [1.0]})
    clips = pd.DataFrame(
        [
            {
                "clip_id": "v_0000",
                "video_id": "v",
                "start_frame": 0,
                "end_frame": 1,
                "width": W,
                "height": H,
                "fps": 1.0,
            }
        ]  # fmt: skip
    )
    out = score_motion(clips, SimpleNamespace(samples=samples), {})
    assert list(out["clip_id"]) == ["v_0000"]


def test_ingest_of_a_shard_with_videos_and_failed_items(tmp_path):
    from clipsift.ingest import ingest_shard, shard_items

    frames = np.zeros((3, 32, 48, 3), np.uint8)
    ok = write_mp4(tmp_path / "ok.mp4", frames, 8)
    table = pd.DataFrame(
        [
            {
                "source": "g",
                "id": "ok",
                "uri": "prompt:x#1",
                "path": str(ok),
                "caption": "p",
                "extra": "{}",
                "kind": "video",
                "archive": None,
                "error": None,
            },
            {
                "source": "g",
                "id": "bad",
                "uri": "prompt:x#2",
                "path": None,
                "caption": "q",
                "extra": "{}",
                "kind": "video",
                "archive": None,
                "error": "generate: no image",
            },
        ]  # fmt: skip
    )
    table.to_parquet(tmp_path / "generated.parquet", index=False)
    plan = pd.read_parquet(tmp_path / "generated.parquet")
    src = ingest_shard(shard_items(plan, {}, "g-00000", tmp_path))
    by = src.set_index("video_id")
    assert by.loc["g-bad", "error"] == "generate: no image"
    assert by.loc["g-ok", "n_frames"] == 3 and pd.isna(by.loc["g-ok", "error"])


# ----------------------------------------------------------------------------- the workflow


@pytest.mark.slow
def test_generate_sources_through_the_workflow(tmp_path, pipes, image):
    """Text-to-video (CogVideoX), and text-to-image first frames (SD3) for image-to-video (SVD)
    next to a listed first frame, through Snakemake to clips and the dataset metadata. Two
    shards only: every job is a process on a loaded machine (one-frame items and failed items
    are checked above, at the stage and at ingest)."""
    wd = tmp_path / "wd"
    (wd / "lists").mkdir(parents=True)
    (wd / "lists" / "t2v.txt").write_text("a red car drives at night\na dog runs on grass\n")
    (wd / "lists" / "chain.jsonl").write_text(
        json.dumps({"prompt": "a lighthouse in fog"})
        + "\n"
        + json.dumps({"prompt": "a boat on a lake", "image": str(image)})
    )
    common = {"steps": 2, "width": W, "height": H, "device": "cpu"}
    sources = [
        {"name": "t2v", "type": "generate", "path": "lists/t2v.txt", "generator": "cogvideox",
         "model": str(pipes["cogvideox"]), "frames": 9, "fps": 8, "seed": 1, **common},
        {"name": "chain", "type": "generate", "path": "lists/chain.jsonl", "image_key": "image",
         "generator": "sd3", "model": str(pipes["sd3"]), "t2i_as": "first_frame",
         "i2v": {"generator": "svd", "model": str(pipes["svd"]), "frames": 5, "fps": 5,
                 "steps": 2}, **common},
    ]  # fmt: skip
    cfg = base_config(sources, split={"min_seconds": 0.0}, filters={"ocr": {"enabled": False}})
    run = run_snakemake(wd, cfg)
    shards = plan_shards(wd)
    assert {s["kind"] for s in shards.values()} == {"prompt"}
    assert run.rules["generate"] == len(shards) == 2

    expect = {"t2v": (9, 8.0), "chain": (5, 5.0)}
    gen = {}
    for shard, info in shards.items():
        table = pd.read_parquet(wd / "results" / "shards" / shard / "generated.parquet")
        assert list(table.columns) == [*ITEM_COLUMNS, "error"]
        assert table["error"].isna().all() and set(table["kind"]) == {"video"}
        gen.update({(info["source"], r["caption"]): r for r in table.to_dict("records")})
    assert len(gen) == 4
    for (source, _), row in gen.items():
        n, fps = expect[source]
        assert row["path"].endswith(".mp4") and count_frames(row["path"]) == n
        assert read_frames(row["path"]).shape[1:] == (H, W, 3)
        rec = json.loads(row["extra"])["generate"]
        assert rec["fps"] == fps and rec["frames"] == n
    lighthouse = json.loads(gen[("chain", "a lighthouse in fog")]["extra"])["generate"]
    assert lighthouse["first_frame"]["from"] == "sd3" and lighthouse["kind"] == "t2i+i2v"
    boat = json.loads(gen[("chain", "a boat on a lake")]["extra"])["generate"]
    assert boat["first_frame"] == {"from": "list", "image": str(image)}

    src = pd.concat(
        pd.read_parquet(wd / "results" / "shards" / s / "source.parquet") for s in shards
    )
    assert src["error"].isna().all() and len(src) == 4
    assert set(src["width"]) == {W} and set(src["height"]) == {H}
    assert sorted(src["n_frames"]) == [5, 5, 9, 9]
    assert set(src["fps"]) == {8.0, 5.0}
    clips = pd.concat(
        pd.read_parquet(wd / "results" / "shards" / s / "clips.parquet") for s in shards
    )
    assert set(src["video_id"]) == set(clips["video_id"])
    meta = metadata(wd)
    assert set(meta["video_id"]) == set(src["video_id"])
    captions = dict(zip(src["video_id"], src["caption"], strict=True))
    assert all(r.source_caption == captions[r.video_id] for r in meta.itertuples())
    assert set(meta["source_caption"]) == {c for _, c in gen}
    # a second run has nothing to do
    assert run_snakemake(wd, cfg, dryrun=True).jobs == []
