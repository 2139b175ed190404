"""The shard plan (clipsift.plan): fingerprint, stable assignment, archive shards, hidden files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from clipsift import plan
from clipsift.plan import fingerprint, load_shards, update_plan
from clipsift.sources.base import slug_id

SHARD_RE = re.compile(r"[A-Za-z0-9_.-]+")  # the Snakefile's wildcard constraint


def touch(path: Path, data: bytes = b"v") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def folder_config(path="videos", shard_size=2, **kw) -> dict:
    return {
        "results": "results",
        "shard_size": shard_size,
        "sources": [{"name": "f", "type": "folder", "path": path}],
        **kw,
    }


def snapshot(pdir: Path) -> dict[str, tuple[bytes, int]]:
    """Content and mtime (ns) of every shard file of the plan."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (pdir / "shards").glob("*.parquet")
    }


def shard_ids(root: Path, shard: str) -> list[str]:
    return list(pd.read_parquet(root / "results/plan/shards" / f"{shard}.parquet")["id"])


# ----------------------------------------------------------------------------- fingerprint


def test_fingerprint_depends_on_sources_and_shard_size_only():
    cfg = folder_config()
    fp = fingerprint(cfg)
    assert re.fullmatch(r"[0-9a-f]{16}", fp)
    # other settings and key order do not matter
    assert fingerprint({**cfg, "scan": {"detector": "content"}, "split": {"max_seconds": 3}}) == fp
    reordered = {"sources": [dict(reversed(cfg["sources"][0].items()))], "shard_size": 2}
    assert fingerprint(reordered) == fp
    # the sources and the shard size do
    assert fingerprint({**cfg, "shard_size": 3}) != fp
    other = {**cfg, "sources": [{**cfg["sources"][0], "path": "elsewhere"}]}
    assert fingerprint(other) != fp
    two = {**cfg, "sources": [*cfg["sources"], {"name": "g", "type": "folder", "path": "x"}]}
    assert fingerprint(two) != fp


def test_calibration_sample_size_is_part_of_the_fingerprint(tmp_path):
    for name in "abcd":
        touch(tmp_path / "videos" / f"{name}.mp4")
    cfg = folder_config(shard_size=1, calibrate={"sample_size": 2})
    assert len(load_shards(cfg, tmp_path)) == 2
    assert len(load_shards({**cfg, "calibrate": {"sample_size": 0}}, tmp_path)) == 4


# ----------------------------------------------------------------------------- folder plans


def test_plan_groups_items_by_shard_size(tmp_path):
    for name in ["a", "b", "c", "d", "e"]:
        touch(tmp_path / "videos" / f"{name}.mp4")
    shards = update_plan(folder_config(), tmp_path)
    assert [(s["name"], s["items"], s["source"], s["kind"]) for s in shards] == [
        ("f-00000", 2, "f", "video"),
        ("f-00001", 2, "f", "video"),
        ("f-00002", 1, "f", "video"),
    ]
    assert [shard_ids(tmp_path, s["name"]) for s in shards] == [["a", "b"], ["c", "d"], ["e"]]
    pdir = tmp_path / "results/plan"
    manifest = json.loads((pdir / "shards.json").read_text())
    assert manifest == {"fingerprint": fingerprint(folder_config()), "shards": shards}
    items = pd.read_parquet(pdir / "items.parquet")
    assert list(items["shard"]) == ["f-00000", "f-00000", "f-00001", "f-00001", "f-00002"]
    row = pd.read_parquet(pdir / "shards/f-00000.parquet").iloc[0]
    assert row["path"] == str(tmp_path / "videos/a.mp4") and row["uri"] == row["path"]
    assert json.loads(row["extra"]) == {"relpath": "a.mp4"} and row["archive"] is None


def test_new_items_go_to_new_shards_and_old_shards_stay_untouched(tmp_path):
    for name in ["b", "d", "f"]:
        touch(tmp_path / "videos" / f"{name}.mp4")
    cfg = folder_config()
    update_plan(cfg, tmp_path)
    pdir = tmp_path / "results/plan"
    before = snapshot(pdir)
    assert set(before) == {"f-00000.parquet", "f-00001.parquet"}

    # new videos that sort before, between and after the old ones; one old video deleted
    for name in ["a", "c", "g"]:
        touch(tmp_path / "videos" / f"{name}.mp4")
    (tmp_path / "videos/d.mp4").unlink()
    shards = update_plan(cfg, tmp_path)
    assert [(s["name"], s["items"]) for s in shards] == [
        ("f-00000", 2),
        ("f-00001", 1),
        ("f-00002", 2),
        ("f-00003", 1),
    ]
    after = snapshot(pdir)
    for name, (data, mtime) in before.items():
        assert after[name] == (data, mtime), f"{name} was rewritten"
    assert shard_ids(tmp_path, "f-00000") == ["b", "d"]  # d stays planned (ingest reports it)
    assert shard_ids(tmp_path, "f-00002") == ["a", "c"]
    assert shard_ids(tmp_path, "f-00003") == ["g"]

    # nothing new: nothing changes, not even mtimes
    snap = snapshot(pdir)
    assert update_plan(cfg, tmp_path) == shards
    assert snapshot(pdir) == snap


def test_load_shards_reads_the_plan_without_listing(tmp_path, monkeypatch):
    touch(tmp_path / "videos/a.mp4")
    cfg = folder_config()
    first = load_shards(cfg, tmp_path)  # no plan yet: plans
    assert [s["name"] for s in first] == ["f-00000"]
    touch(tmp_path / "videos/b.mp4")

    def boom(*a, **k):
        raise AssertionError("the sources were listed")

    with monkeypatch.context() as m:
        m.setattr(plan, "list_items", boom)
        assert load_shards(cfg, tmp_path) == first  # b is not seen: the plan is not redone

    # a changed fingerprint (here the shard size) replans, keeping the old assignment
    shards = load_shards({**cfg, "shard_size": 5}, tmp_path)
    assert [(s["name"], s["items"]) for s in shards] == [("f-00000", 1), ("f-00001", 1)]
    manifest = json.loads((tmp_path / "results/plan/shards.json").read_text())
    assert manifest["fingerprint"] == fingerprint({**cfg, "shard_size": 5})


def test_a_source_the_config_no_longer_names_stops_the_plan_until_dropped(tmp_path):
    """Renaming a source left its planned videos under the old name, and every run stopped
    with a bare KeyError from the rules (a tryout): the plan now says so, before writing
    anything, and ``drop`` takes the old name's shards out of the plan."""
    for name in "abc":
        touch(tmp_path / "videos" / f"{name}.mp4")
    cfg = folder_config()
    assert [s["name"] for s in load_shards(cfg, tmp_path)] == ["f-00000", "f-00001"]
    pdir = tmp_path / "results/plan"
    before = snapshot(pdir), (pdir / "shards.json").read_bytes()
    renamed = {**cfg, "sources": [{**cfg["sources"][0], "name": "g"}]}
    for dryrun in (True, False):
        with pytest.raises(
            plan.PlanError,
            match=r"3 video\(s\) in 2 shard\(s\) of source\(s\) f, "
            r"which `sources` no longer names.*clipsift plan --drop f",
        ):
            load_shards(renamed, tmp_path, dryrun=dryrun)
        assert (snapshot(pdir), (pdir / "shards.json").read_bytes()) == before
    with pytest.raises(plan.PlanError, match="no source named"):
        update_plan(renamed, tmp_path, drop=("h",))
    shards = update_plan(renamed, tmp_path, drop=("f",))
    assert [(s["name"], s["items"]) for s in shards] == [("g-00000", 2), ("g-00001", 1)]
    assert set(snapshot(pdir)) == {"g-00000.parquet", "g-00001.parquet"}
    assert load_shards(renamed, tmp_path) == shards


def test_a_moved_source_is_said_and_planned_anew_at_its_new_path_when_dropped(tmp_path, caplog):
    """Items keep the paths they were planned with: a source pointed at its moved folder still
    reads the old paths, so the re-plan says which planned videos its source lists no more, and
    ``drop`` plans the source anew at the new paths (the same shard names: nothing else moves)."""
    for name in "ab":
        touch(tmp_path / "videos" / f"{name}.mp4")
    cfg = folder_config()
    first = update_plan(cfg, tmp_path)
    (tmp_path / "videos").rename(tmp_path / "moved")
    moved = folder_config(path="moved")
    with caplog.at_level("WARNING", logger="clipsift.plan"):
        assert update_plan(moved, tmp_path) == first
    said = caplog.text
    assert "source f no longer lists 2 planned video(s) where they were planned" in said, said
    assert str(tmp_path / "videos" / "a.mp4") in said and "clipsift plan --drop f" in said, said
    assert update_plan(moved, tmp_path, drop=("f",)) == first
    paths = pd.read_parquet(tmp_path / "results/plan/shards/f-00000.parquet")["path"]
    assert [Path(p).parent.name for p in paths] == ["moved", "moved"]


def test_a_plan_written_with_a_removed_source_stops_the_run_too(tmp_path):
    """The plan's fingerprint matches the config when an older clipsift wrote the plan with
    the removed source's shards in it: the check runs on the plan's shard list too (review)."""
    for name in "ab":
        touch(tmp_path / "videos" / f"{name}.mp4")
        touch(tmp_path / "more" / f"{name}.mp4")
    two = {**folder_config(), "sources": [*folder_config()["sources"],
           {"name": "g", "type": "folder", "path": "more"}]}  # fmt: skip
    update_plan(two, tmp_path)
    one = folder_config()
    manifest = tmp_path / "results/plan/shards.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "fingerprint": fingerprint(one)}))  # as it was
    with pytest.raises(plan.PlanError, match="of source.s. g, which `sources` no longer names"):
        load_shards(one, tmp_path)


def test_prompts_reordered_are_no_moved_source(tmp_path, caplog):
    """A prompt's uri holds its row number: one prompt added at the top shifted every later
    uri, and each re-plan said the source's videos had moved (review). Prompts have no path."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("a dog runs on grass\na red car at night\n")
    cfg = {"results": "results", "shard_size": 4,
           "sources": [{"name": "g", "type": "generate", "generator": "cogvideox",
                        "path": str(prompts)}]}  # fmt: skip
    update_plan(cfg, tmp_path)
    prompts.write_text("a boat at sea\na dog runs on grass\na red car at night\n")
    with caplog.at_level("WARNING", logger="clipsift.plan"):
        shards = update_plan(cfg, tmp_path)
    assert "no longer lists" not in caplog.text, caplog.text
    assert sum(s["items"] for s in shards) == 3


def test_a_dry_run_never_changes_an_existing_plan(tmp_path, caplog):
    """A dry run with a mistaken config (another folder under the same source name) added that
    folder's videos to the plan for good, and a real run with the right config then built them
    (a tryout). A dry run plans only where there is no plan yet (its jobs need the files)."""
    for name in "ab":
        touch(tmp_path / "videos" / f"{name}.mp4")
    touch(tmp_path / "other" / "x.mp4")
    cfg = folder_config()
    first = load_shards(cfg, tmp_path, dryrun=True)  # no plan yet: written
    assert [s["name"] for s in first] == ["f-00000"]
    pdir = tmp_path / "results/plan"
    before = (
        snapshot(pdir),
        (pdir / "shards.json").read_bytes(),
        (pdir / "items.parquet").read_bytes(),
    )
    mistaken = folder_config(path="other")
    with caplog.at_level("WARNING", logger="clipsift.plan"):
        assert load_shards(mistaken, tmp_path, dryrun=True) == first
    assert "a dry run leaves the plan as it is" in caplog.text and "adds 1 shard(s)" in caplog.text
    after = (
        snapshot(pdir),
        (pdir / "shards.json").read_bytes(),
        (pdir / "items.parquet").read_bytes(),
    )
    assert after == before
    assert load_shards(cfg, tmp_path) == first  # the right config: nothing to redo


def test_several_sources_have_their_own_shards(tmp_path):
    for name in ["a", "b", "c"]:
        touch(tmp_path / "one" / f"{name}.mp4")
        touch(tmp_path / "two" / f"{name}.mkv")
    cfg = {
        "results": "out",
        "shard_size": 2,
        "sources": [
            {"name": "one", "type": "folder", "path": "one"},
            {"name": "two-x", "type": "folder", "path": str(tmp_path / "two")},
        ],
    }
    shards = update_plan(cfg, tmp_path)
    assert [(s["name"], s["source"], s["items"]) for s in shards] == [
        ("one-00000", "one", 2),
        ("one-00001", "one", 1),
        ("two-x-00000", "two-x", 2),
        ("two-x-00001", "two-x", 1),
    ]
    assert (tmp_path / "out/plan/shards.json").exists()
    # adding to one source starts a new shard of that source only
    touch(tmp_path / "two/d.mkv")
    names = [s["name"] for s in update_plan(cfg, tmp_path)]
    assert names[-1] == "two-x-00002" and "one-00002" not in names


def test_hidden_files_and_folders_are_not_planned(tmp_path):
    for rel in [
        "a.mp4",
        "sub/b.mp4",
        ".hidden.mp4",
        "._a.mp4",  # macOS resource fork
        ".git/c.mp4",
        "sub/.cache/d.mp4",
        "sub/.e.mp4",
        "notes.txt",
        "sub/f.MOV",
    ]:
        touch(tmp_path / "videos" / rel)
    update_plan(folder_config(shard_size=10), tmp_path)
    items = pd.read_parquet(tmp_path / "results/plan/items.parquet")
    rels = sorted(json.loads(e)["relpath"] for e in items["extra"])
    assert rels == ["a.mp4", "sub/b.mp4", "sub/f.MOV"]


def test_empty_sources_stop_with_a_clear_message(tmp_path):
    (tmp_path / "videos").mkdir()
    with pytest.raises(SystemExit, match="list no videos"):
        update_plan(folder_config(), tmp_path)
    assert not (tmp_path / "results/plan/shards.json").exists()


# ----------------------------------------------------------------------------- archives


def hf_config(shards: list[str], **kw) -> dict:
    source = {"name": "hf", "type": "hf_archives", "repo": "org/data", "shards": shards, **kw}
    return {"results": "results", "shard_size": 2, "sources": [source]}


def test_archives_are_one_shard_each_named_by_stem(tmp_path):
    archives = ["000.tar", "train/001.tar.gz", "x/y z+2.zip", "p.tgz", "noext"]
    shards = update_plan(hf_config(archives, revision="v1"), tmp_path)
    expected = {
        "hf-000": "000.tar",
        f"hf-{slug_id('train/001')}": "train/001.tar.gz",
        f"hf-{slug_id('x/y z+2')}": "x/y z+2.zip",
        "hf-p": "p.tgz",
        "hf-noext": "noext",
    }
    assert {s["name"] for s in shards} == set(expected)
    assert all(SHARD_RE.fullmatch(s["name"]) for s in shards)
    for s in shards:
        assert (s["kind"], s["items"], s["source"]) == ("archive", 1, "hf")
        row = pd.read_parquet(tmp_path / "results/plan/shards" / f"{s['name']}.parquet").iloc[0]
        archive = expected[s["name"]]
        assert row["archive"] == row["id"] == archive and row["kind"] == "archive"
        assert row["uri"] == f"hf://datasets/org/data@v1/{archive}"
        assert row["path"] is None

    # a new archive in the list: one new shard, the others untouched
    pdir = tmp_path / "results/plan"
    before = snapshot(pdir)
    shards = update_plan(hf_config([*archives, "001.zip"], revision="v1"), tmp_path)
    assert {s["name"] for s in shards} == {*expected, "hf-001"}
    after = snapshot(pdir)
    assert all(after[k] == v for k, v in before.items())


def test_archives_with_the_same_stem_are_separate_shards(tmp_path):
    shards = update_plan(hf_config(["000.tar", "000.zip"]), tmp_path)
    assert len(shards) == 2 and all(s["items"] == 1 for s in shards)


def test_limit_shards_takes_the_first_in_plan_order():
    from clipsift.plan import limit_shards

    shards = [{"name": f"s-{i:05d}"} for i in (3, 0, 2, 1)]
    assert list(limit_shards(shards, 2)) == ["s-00000", "s-00001"]
    assert set(limit_shards(shards, None)) == {s["name"] for s in shards}
    assert set(limit_shards(shards, 10)) == {s["name"] for s in shards}


@pytest.mark.slow
def test_the_first_n_shards_then_the_rest(tmp_path, tiny_videos):
    """``snakemake --config limit_shards=1`` builds the first shard's dataset; the plain command
    then adds the others and keeps what the first run made."""
    from helpers import SNAKEFILE, base_config, snakemake_cli, write_config

    src = [{"name": "v", "type": "folder", "path": str(tiny_videos["a"].parent)}]
    write_config(tmp_path, base_config(src, lean=True, shard_size=1))
    r = snakemake_cli(
        tmp_path, "--snakefile", SNAKEFILE, "--cores", "2", "--config", "limit_shards=1"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    meta = pd.read_parquet(tmp_path / "results" / "dataset" / "metadata.parquet")
    assert set(meta["shard"]) == {"v-00000"}
    assert not (tmp_path / "results" / "shards" / "v-00001").exists()
    first = (tmp_path / "results" / "shards" / "v-00000" / "selection.parquet").stat().st_mtime_ns
    r = snakemake_cli(tmp_path, "--snakefile", SNAKEFILE, "--cores", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    meta = pd.read_parquet(tmp_path / "results" / "dataset" / "metadata.parquet")
    assert set(meta["shard"]) == {"v-00000", "v-00001", "v-00002"}
    again = (tmp_path / "results" / "shards" / "v-00000" / "selection.parquet").stat().st_mtime_ns
    assert again == first


def test_a_renamed_source_stops_the_run_with_the_command_that_drops_it(tmp_path, tiny_videos):
    """As a user types it: the dry run names the old source and the command, which works."""
    from helpers import SNAKEFILE, base_config, clipsift_cli, snakemake_cli, write_config

    src = {"name": "v", "type": "folder", "path": str(tiny_videos["a"].parent)}
    write_config(tmp_path, base_config([src], lean=True))
    r = snakemake_cli(tmp_path, "--snakefile", SNAKEFILE, "--cores", "1", "-n")
    assert r.returncode == 0, r.stderr[-3000:]
    write_config(tmp_path, base_config([{**src, "name": "w"}], lean=True))
    r = snakemake_cli(tmp_path, "--snakefile", SNAKEFILE, "--cores", "1", "-n")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "KeyError" not in out, out[-3000:]
    assert "of source(s) v, which `sources` no longer names" in out, out[-3000:]
    assert "clipsift plan --drop v" in out, out[-3000:]
    r = clipsift_cli(tmp_path, "plan", "--drop", "v")
    assert r.returncode == 0 and "1 shard(s), 3 item(s)" in r.stdout, r.stdout + r.stderr
    r = snakemake_cli(tmp_path, "--snakefile", SNAKEFILE, "--cores", "1", "-n")
    assert r.returncode == 0 and "w-00000" in r.stdout + r.stderr, r.stderr[-3000:]


def test_clipsift_plan_stops_while_a_run_holds_the_results(tmp_path):
    """``clipsift plan --drop`` removes plan files that a running job may be about to read:
    it takes the results folder's lock as a run does (review)."""
    from helpers import clipsift_cli

    from clipsift import runlock

    touch(tmp_path / "videos" / "a.mp4")
    (tmp_path / "my.yaml").write_text(json.dumps(folder_config(path=str(tmp_path / "videos"))))
    runlock.acquire(tmp_path / "results")  # a run, as another process sees it
    try:
        r = clipsift_cli(tmp_path, "plan", "--config", "my.yaml")
        assert r.returncode != 0 and "results" in r.stderr and "Traceback" not in r.stderr, r.stderr
    finally:
        runlock.release(tmp_path / "results")
    r = clipsift_cli(tmp_path, "plan", "--config", "my.yaml")
    assert r.returncode == 0 and "1 shard(s), 1 item(s)" in r.stdout, r.stderr
