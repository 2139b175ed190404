"""Source readers: folder, list files, HunyuanVideo, conversation JSON, Hub archives, safe extraction.

No network: Hub archives are served from a pre-populated huggingface_hub cache in offline mode.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from clipsift.sources import (
    Item,
    SourceError,
    SourceUnavailable,
    UnsafeArchiveError,
    fetch_archive,
    hf_archive,
    list_archives,
    list_items,
    safe_extract,
    with_retries,
)
from clipsift.sources.base import slug_id
from clipsift.sources.extract import Limits, _copy


def touch(path: Path, data: bytes = b"\x00video") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def by_id(items: list[Item]) -> dict[str, Item]:
    return {it.id: it for it in items}


# ---------------------------------------------------------------- folder


def test_folder_recursive_extensions_and_ids(tmp_path):
    vids = tmp_path / "vids"
    for rel in [
        "a.mp4",
        "sub/B.MP4",
        "sub/deep/c d.mkv",
        "e.mov",
        "notes.txt",
        ".hidden.mp4",
        ".git/x.mp4",
    ]:
        touch(vids / rel)
    src = {"name": "f", "type": "folder", "path": "vids", "extensions": ["mp4", ".MKV"]}
    items = list_items(src, root=tmp_path)
    assert [it.id for it in items] == sorted(it.id for it in items)
    got = by_id(items)
    assert set(got) == {"a", slug_id("sub/B"), slug_id("sub/deep/c d")}
    a = got["a"]
    assert a.path == a.uri == str(vids / "a.mp4") and Path(a.path).is_absolute()
    assert a.extra == {"relpath": "a.mp4"} and a.caption is None
    assert got[slug_id("sub/deep/c d")].extra == {"relpath": "sub/deep/c d.mkv"}

    flat = list_items({**src, "recursive": False}, root=tmp_path)
    assert [it.id for it in flat] == ["a"]
    # default extensions take .mov too
    assert "e" in by_id(
        list_items({"name": "f", "type": "folder", "path": str(vids)}, root=Path("/nowhere"))
    )


def test_folder_says_which_camera_and_disc_files_it_leaves_out(tmp_path, caplog):
    """AVCHD camcorders write .MTS (.m2ts on the disc), HDV .m2t, old phones .3gp, DVDs .vob:
    not in the default extensions, they were left out without a word (an .MTS folder gave an
    empty plan). A warning names them and says how to take them; listed in `extensions`, they
    are taken."""
    vids = tmp_path / "vids"
    for rel in ["00001.MTS", "STREAM/00002.m2ts", "tape.m2t", "phone.3gp", "VTS_01_1.VOB",
                "a.mp4", "notes.txt", "thumbs/a.jpg", "thumbs/b.jpg"]:  # fmt: skip
        touch(vids / rel)
    src = {"name": "cam", "type": "folder", "path": str(vids)}
    with caplog.at_level("INFO", logger="clipsift.sources.folder"):
        items = list_items(src, root=tmp_path)
    assert [Path(it.path).name for it in items] == ["a.mp4"]
    said = [r for r in caplog.records if "left out" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING"
    text = said[0].getMessage()
    assert "5 video file(s)" in text and ".mts 1" in text and ".vob 1" in text, text
    assert "`extensions`" in text
    taken = list_items(src | {"extensions": ["mp4", "mts", "m2ts", "m2t", "3gp", "vob"]},
                       root=tmp_path)  # fmt: skip
    assert len(taken) == 6
    caplog.clear()
    with caplog.at_level("INFO", logger="clipsift.sources.folder"):
        list_items({"name": "web", "type": "folder", "path": str(vids / "thumbs")}, root=tmp_path)
    assert [r.levelname for r in caplog.records] == ["INFO"]  # other files: a note, no warning


def test_folder_follows_linked_subfolders_once(tmp_path):
    """Subfolders that are symlinks (a dataset assembled from links to other disks) were skipped
    without a word; they are followed now, each real folder once, so a second link to the same
    folder lists nothing twice. A link into the folder itself (a ``latest`` link) renames
    nothing, and a link back up (a loop) or to a folder that holds the source adds nothing."""
    vids, disk = tmp_path / "data" / "vids", tmp_path / "disk2"
    touch(vids / "2024" / "12" / "a.mp4")
    touch(tmp_path / "data" / "elsewhere" / "z.mp4")
    touch(disk / "b.mp4")
    touch(disk / "deep" / "c.mp4")
    (vids / "linked").symlink_to(disk, target_is_directory=True)
    (vids / "again").symlink_to(disk, target_is_directory=True)  # the same folder twice
    (vids / "latest").symlink_to(vids / "2024" / "12", target_is_directory=True)  # inward
    (vids / "parent").symlink_to(tmp_path / "data", target_is_directory=True)  # holds vids
    (disk / "deep" / "up").symlink_to(vids, target_is_directory=True)  # a loop
    (disk / "deep" / "side").symlink_to(disk, target_is_directory=True)  # a loop in the link
    (vids / "clip.mp4").symlink_to(vids / "2024" / "12" / "a.mp4")  # a linked file, as before
    items = list_items({"name": "f", "type": "folder", "path": "data/vids"}, root=tmp_path)
    rel = sorted(it.extra["relpath"] for it in items)
    # "again" sorts first, so it is the path the linked folder is listed under
    assert rel == ["2024/12/a.mp4", "again/b.mp4", "again/deep/c.mp4", "clip.mp4"]


def test_folder_missing_and_unknown_type(tmp_path):
    with pytest.raises(SourceError, match=r"does not exist; fix `path`"):
        list_items({"name": "f", "type": "folder", "path": "nope"}, root=tmp_path)
    with pytest.raises(SourceError, match="unknown source type 'foldr'; did you mean 'folder'"):
        list_items({"name": "f", "type": "foldr", "path": "."}, root=tmp_path)


# ---------------------------------------------------------------- metalist

ROWS = [
    {
        "clip": "v/one.mp4",
        "key": "id1",
        "raw_caption": {"long caption": "long one", "short caption": "s"},
        "fps": 24,
    },
    {"clip": "v/two.mp4", "key": "id2", "raw_caption": {"long caption": "long two"}, "fps": 30.0},
]


def metalist(path: str, **kw) -> dict:
    return {"name": "m", "type": "metalist", "path": path, **kw}


def test_metalist_json_list_custom_and_dotted_keys(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists/meta.json").write_text(json.dumps(ROWS))
    src = metalist(
        "lists/meta.json", video_key="clip", id_key="key", caption_key="raw_caption.long caption"
    )
    items = list_items(src, root=tmp_path)
    assert [it.id for it in items] == ["id1", "id2"]
    one = items[0]
    # relative paths resolve against the list file's folder; a missing video is kept
    assert one.path == str(tmp_path / "lists/v/one.mp4") and not Path(one.path).exists()
    assert one.caption == "long one"
    assert one.extra == {"fps": 24}  # used keys and nested objects are left out

    # base_dir (relative to root) wins over the list's folder; no id_key: id from the relative path
    src = metalist(
        "lists/meta.json",
        video_key="clip",
        caption_key="raw_caption.short caption",
        base_dir="data",
    )
    items = list_items(src, root=tmp_path)
    assert [it.id for it in items] == [slug_id("v/one"), slug_id("v/two")]
    assert items[0].path == str(tmp_path / "data/v/one.mp4")
    assert items[0].caption == "s" and items[1].caption is None
    assert items[0].extra == {"key": "id1", "fps": 24}


def test_metalist_json_object_with_list_and_default_keys(tmp_path):
    video = touch(tmp_path / "abs" / "x.mp4")
    rows = [
        {"video_path": str(video), "caption": "a cat"},
        {"path": "rel/y.webm", "prompt": "a dog", "tags": ["t"]},
    ]
    (tmp_path / "m.json").write_text(json.dumps({"version": 2, "data": rows}))
    got = by_id(list_items(metalist("m.json"), root=tmp_path))
    assert got[slug_id("abs/x")].path == str(video) and got[slug_id("abs/x")].caption == "a cat"
    y = got[slug_id("rel/y")]
    assert y.path == str(tmp_path / "rel/y.webm") and y.caption == "a dog" and y.extra == {}


def test_metalist_jsonl(tmp_path):
    lines = [
        {"file": "a.mp4", "text": "t1", "score": 0.5},
        {
            "file": "b.mp4",
            "description": "d2",
            "ok": True,
            "score": float("nan"),
        },  # NaN: not JSON, dropped
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n\n")
    items = list_items(metalist("m.jsonl"), root=tmp_path)
    assert [(it.id, it.caption, it.extra) for it in items] == [
        ("a", "t1", {"score": 0.5}),
        ("b", "d2", {"ok": True}),
    ]


@pytest.mark.parametrize("fmt,sep", [("csv", ","), ("tsv", "\t")])
def test_metalist_csv_tsv(tmp_path, fmt, sep):
    text = sep.join(["vid", "name", "cap", "w"]) + "\n"
    text += sep.join(["clips/a.mp4", "A 1", "hello, world", "640"]) + "\n"
    text += sep.join(["clips/b.mp4", "B", "", "320"]) + "\n"
    if fmt == "csv":
        text = text.replace("hello, world", '"hello, world"')
    (tmp_path / f"list.{fmt}").write_text(text)
    items = list_items(
        metalist(f"list.{fmt}", video_key="vid", id_key="name", caption_key="cap"), root=tmp_path
    )
    got = by_id(items)
    assert set(got) == {slug_id("A 1"), "B"}
    assert got[slug_id("A 1")].caption == "hello, world"
    assert got["B"].caption is None  # an empty cell is no caption
    assert got["B"].extra == {"w": "320"} and got["B"].path == str(tmp_path / "clips/b.mp4")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_metalist_caption_key_that_no_row_has_is_an_error(tmp_path, fmt):
    """A misspelt ``caption_key`` dropped every caption without a word (a tryout). A key that
    every row leaves empty is no mistake; one that no row has is, with the close match."""
    rows = [{"path": "a.mp4", "caption": "a cat"}, {"path": "b.mp4", "caption": ""}]
    if fmt == "csv":
        pd.DataFrame(rows).to_csv(tmp_path / "list.csv", index=False)
    else:
        (tmp_path / "list.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SourceError, match=r"no row has the key 'captoin' \(caption_key\); "
                       r"did you mean 'caption'\? the rows' keys: path, caption"):  # fmt: skip
        list_items(metalist(f"list.{fmt}", caption_key="captoin"), root=tmp_path)
    items = by_id(list_items(metalist(f"list.{fmt}", caption_key="caption"), root=tmp_path))
    assert items["a"].caption == "a cat" and items["b"].caption is None
    for r in rows:
        r["caption"] = ""
    if fmt == "csv":
        pd.DataFrame(rows).to_csv(tmp_path / "list.csv", index=False)
    else:
        (tmp_path / "list.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = list_items(metalist(f"list.{fmt}", caption_key="caption"), root=tmp_path)
    assert [it.caption for it in items] == [None, None]  # an empty column: no captions, no error


def test_metalist_parquet_with_nested_column(tmp_path):
    df = pd.DataFrame(
        {
            "media": ["x/1.mp4", "x/2.mp4"],
            "meta": [{"caption": "c1", "n": 1}, {"caption": "c2", "n": 2}],
            "duration": [1.5, float("nan")],
        }
    )
    df.to_parquet(tmp_path / "t.parquet")
    items = list_items(
        metalist("t.parquet", video_key="media", caption_key="meta.caption"), root=tmp_path
    )
    assert [(it.id, it.caption) for it in items] == [(slug_id("x/1"), "c1"), (slug_id("x/2"), "c2")]
    assert items[0].extra == {"duration": 1.5} and items[1].extra == {"duration": None}  # null
    # format given explicitly for an unusual extension
    (tmp_path / "t.data").write_bytes((tmp_path / "t.parquet").read_bytes())
    assert (
        len(list_items(metalist("t.data", format="parquet", video_key="media"), root=tmp_path)) == 2
    )


def test_dotted_key_rule():
    from clipsift.sources.metalist import _MISSING, lookup

    row = {"a.b": 1, "a": {"b": 2, "c.d": 3, "e": {"f": 4}}, "x": {"y.z": {"w": 5}}}
    assert lookup(row, "a.b") == 1  # an exact key wins
    assert lookup(row, "a.c.d") == 3
    assert lookup(row, "a.e.f") == 4
    assert lookup(row, "x.y.z.w") == 5
    assert lookup(row, "a.nope") is _MISSING


def test_metalist_errors(tmp_path):
    with pytest.raises(SourceError, match=r"missing\.json.*does not exist; fix `path`"):
        list_items(metalist("missing.json"), root=tmp_path)
    (tmp_path / "m.jsonl").write_text('{"video": "a.mp4"}\n{"caption": "no video"}\n')
    with pytest.raises(
        SourceError, match=r"row 2 has no video path: no any of video_path.*set `video_key`"
    ):
        list_items(metalist("m.jsonl"), root=tmp_path)
    with pytest.raises(SourceError, match=r"row 1 has no video path: no 'clip' \(video_key\)"):
        list_items(metalist("m.jsonl", video_key="clip"), root=tmp_path)
    with pytest.raises(SourceError, match=r"row 1 has no 'uid' \(id_key\)"):
        list_items(metalist("m.jsonl", id_key="uid"), root=tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"video": "a.mp4"}\n{oops\n')
    with pytest.raises(SourceError, match="line 2 is not valid JSON"):
        list_items(metalist("bad.jsonl"), root=tmp_path)
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(SourceError, match="cannot read it as json"):
        list_items(metalist("bad.json"), root=tmp_path)
    (tmp_path / "two.json").write_text('{"a": [], "b": []}')
    with pytest.raises(SourceError, match="one list value"):
        list_items(metalist("two.json"), root=tmp_path)
    (tmp_path / "m.xlsx").write_text("")
    with pytest.raises(SourceError, match="set `format`"):
        list_items(metalist("m.xlsx"), root=tmp_path)


def _list_of(tmp_path: Path, kind: str, videos: list[str]) -> dict:
    """A source of ``kind`` listing ``videos`` (as written), one row each."""
    if kind == "metalist":
        (tmp_path / "m.csv").write_text("video,caption\n" + "".join(f"{v},x\n" for v in videos))
        return metalist("m.csv")
    if kind == "hunyuan":
        for i, v in enumerate(videos):
            (tmp_path / f"{i}.json").write_text(json.dumps({"video_path": v}))
        (tmp_path / "meta_file.list").write_text("".join(f"{i}.json\n" for i in range(len(videos))))
        return {"name": "h", "type": kind, "path": "meta_file.list"}
    rows = [{"id": f"c{i}", "video": v, "conversations": []} for i, v in enumerate(videos)]
    (tmp_path / "c.json").write_text(json.dumps(rows))
    return {"name": "c", "type": kind, "path": "c.json"}


@pytest.mark.parametrize("kind", ["metalist", "hunyuan", "conversation"])
def test_a_listed_url_stops_the_plan_saying_what_to_do(tmp_path, kind):
    """Lists of web datasets hold URLs; a URL became a "missing file" at a mangled local path
    (``list folder/https:/host/a.mp4``). It now stops the plan naming the row and what to do;
    a ``file://`` URL is read as its path."""
    local = touch(tmp_path / "v" / "a b.mp4")
    src = _list_of(tmp_path, kind, [local.as_uri(), "https://example.com/clips/b.mp4"])
    where = "line 2" if kind == "hunyuan" else "row 2"
    with pytest.raises(SourceError, match=rf"{where}.*'https://example.com/clips/b.mp4' is a URL"):
        list_items(src, root=tmp_path)
    items = list_items(_list_of(tmp_path, kind, [local.as_uri(), "v/b.mp4"]), root=tmp_path)
    assert sorted(it.path for it in items) == [str(local), str(tmp_path / "v" / "b.mp4")]
    # a host, or a relative path written as a URL, is no local file: said, not guessed
    with pytest.raises(SourceError, match=r"'file://v/a b.mp4' names a host \('v'\)"):
        list_items(_list_of(tmp_path, kind, ["file://v/a b.mp4"]), root=tmp_path)


def test_a_hugging_face_video_column_in_a_parquet_list(tmp_path):
    """``datasets``' Video feature is a {bytes, path} struct: its path is read; embedded bytes
    stop the plan saying what to do (the error quoted the whole video, megabytes of it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    touch(tmp_path / "v" / "a.mp4")
    rows = [{"video": {"bytes": None, "path": "v/a.mp4"}, "caption": "a"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "paths.parquet")
    (item,) = list_items(metalist("paths.parquet"), root=tmp_path)
    assert item.path == str(tmp_path / "v" / "a.mp4") and item.caption == "a"
    rows = [{"video": {"bytes": b"\x00" * 1_000_000, "path": "a.mp4"}, "caption": "a"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "bytes.parquet")
    with pytest.raises(SourceError, match="holds the video's bytes") as err:
        list_items(metalist("bytes.parquet"), root=tmp_path)
    assert len(str(err.value)) < 400
    (tmp_path / "odd.jsonl").write_text(json.dumps({"video": ["x" * 10_000]}) + "\n")
    with pytest.raises(SourceError, match="is not a path string") as err:
        list_items(metalist("odd.jsonl"), root=tmp_path)
    assert len(str(err.value)) < 400


def test_repeated_ids_get_suffixes(tmp_path):
    rows = [
        {"video": "a.mp4", "id": "x"},
        {"video": "b.mp4", "id": "x"},
        {"video": "c.mp4", "id": "x-2"},
    ]
    (tmp_path / "m.json").write_text(json.dumps(rows))
    items = list_items(metalist("m.json", id_key="id"), root=tmp_path)
    assert [(it.id, Path(it.path).name) for it in items] == [
        ("x", "a.mp4"),
        ("x-2", "c.mp4"),
        ("x-3", "b.mp4"),
    ]


# ---------------------------------------------------------------- hunyuan, conversation


def test_hunyuan_meta_file_list(tmp_path):
    meta = tmp_path / "hy"
    (meta / "json").mkdir(parents=True)
    (meta / "json/0001.json").write_text(
        json.dumps(
            {
                "video_id": "vid 1",
                "video_path": "../videos/0001.mp4",
                "raw_caption": {"long caption": "a long one", "short caption": "short"},
                "fps": 25,
            }
        )
    )
    (meta / "json/0002.json").write_text(
        json.dumps({"video_path": "/data/0002.mp4", "raw_caption": {"short caption": "only short"}})
    )
    (meta / "meta_file.list").write_text("# train\njson/0001.json\n\njson/0002.json\n")
    src = {"name": "h", "type": "hunyuan", "path": "hy/meta_file.list"}
    got = by_id(list_items(src, root=tmp_path))
    assert set(got) == {slug_id("vid 1"), "0002"}
    one = got[slug_id("vid 1")]
    assert one.path == str(meta / "videos/0001.mp4") and one.caption == "a long one"
    assert one.extra == {"fps": 25, "meta_json": str(meta / "json/0001.json")}
    assert got["0002"].path == "/data/0002.mp4" and got["0002"].caption == "only short"

    # base_dir replaces each JSON's folder for relative video paths
    got = by_id(list_items({**src, "base_dir": "store"}, root=tmp_path))
    assert got[slug_id("vid 1")].path == str(tmp_path / "videos/0001.mp4")

    (meta / "meta_file.list").write_text("json/0001.json\njson/0003.json\n")
    with pytest.raises(SourceError, match=r"line 2 .*0003\.json.*does not exist"):
        list_items(src, root=tmp_path)


def test_conversation_json(tmp_path):
    rows = [
        {
            "id": "c1",
            "video": "v/1.mp4",
            "conversations": [
                {"from": "human", "value": "<video>\nDescribe this video."},
                {"from": "gpt", "value": "A man walks."},
                {"from": "gpt", "value": "second answer"},
            ],
        },
        {
            "video": "v/2.mp4",
            "conversations": [{"from": "human", "value": "<video>\nHi"}],
            "split": "train",
        },
    ]
    (tmp_path / "conv.json").write_text(json.dumps(rows))
    src = {"name": "c", "type": "conversation", "path": str(tmp_path / "conv.json")}
    got = by_id(list_items(src, root=Path("/elsewhere")))
    assert got["c1"].caption == "A man walks." and got["c1"].path == str(tmp_path / "v/1.mp4")
    assert got[slug_id("v/2")].caption is None and got[slug_id("v/2")].extra == {"split": "train"}

    (tmp_path / "conv.json").write_text(json.dumps([*rows, {"id": "x", "conversations": []}]))
    with pytest.raises(SourceError, match="row 3 has no 'video' path"):
        list_items(src, root=tmp_path)

    # one record on its own, as OmniVideo's example file is laid out: not its turns as rows
    (tmp_path / "conv.json").write_text(json.dumps(rows[0], indent=2))
    got = list_items(src, root=tmp_path)
    assert [(i.id, i.caption) for i in got] == [("c1", "A man walks.")]
    # an object holding the list of records still works
    (tmp_path / "conv.json").write_text(json.dumps({"data": rows}))
    assert len(list_items(src, root=tmp_path)) == 2


# ---------------------------------------------------------------- list_archives


def test_list_archives(tmp_path):
    src = {
        "name": "hf",
        "type": "hf_archives",
        "repo": "org/data",
        "shards": ["a/000.tar", "./a/001.tar", "a/000.tar"],
    }
    assert list_archives(src, root=tmp_path) == ["a/000.tar", "a/001.tar"]
    (tmp_path / "shards.txt").write_text(
        "# the train split\ntrain/000.tar.gz\n\n  train/001.zip  \n#train/002.zip\n"
    )
    src = {"name": "hf", "type": "hf_archives", "repo": "org/data", "shards_file": "shards.txt"}
    assert list_archives(src, root=tmp_path) == ["train/000.tar.gz", "train/001.zip"]

    with pytest.raises(SourceError, match="exactly one of `shards`"):
        list_archives({**src, "shards": ["x.tar"]}, root=tmp_path)
    with pytest.raises(SourceError, match="shards_file .* does not exist"):
        list_archives({**src, "shards_file": "nope.txt"}, root=tmp_path)
    with pytest.raises(SourceError, match="set `repo`"):
        list_archives({"name": "hf", "shards": ["x.tar"]}, root=tmp_path)
    with pytest.raises(SourceError, match="inside the repo"):
        list_archives({"name": "hf", "repo": "o/d", "shards": ["../x.tar"]}, root=tmp_path)


# ---------------------------------------------------------------- safe_extract


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tar_file(name: str, data: bytes = b"data") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def tar_special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def make_zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".zip"])
def test_safe_extract_ok(tmp_path, suffix):
    files = {"./a/x.mp4": b"12345", "a/x.txt": b"cap", "b.mp4": b"z"}
    if suffix == ".zip":
        arch = make_zip(tmp_path / f"s{suffix}", [(zipfile.ZipInfo("a/"), b""), *files.items()])
    else:
        dirinfo = tarfile.TarInfo("a")
        dirinfo.type = tarfile.DIRTYPE
        arch = make_tar(
            tmp_path / f"s{suffix}", [(dirinfo, None), *(tar_file(n, d) for n, d in files.items())]
        )
    dest = tmp_path / "out"
    touch(dest / "stale.bin")  # a previous extraction is replaced
    assert safe_extract(arch, dest, max_member_bytes=5) == ["a/x.mp4", "a/x.txt", "b.mp4"]
    assert (dest / "a/x.mp4").read_bytes() == b"12345" and not (dest / "stale.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [arch.name, "out"]
    )  # no temp folder left


TAR_BAD = {
    "absolute": ([tar_file("/etc/evil.mp4")], "absolute path"),
    "dotdot": ([tar_file("ok.mp4"), tar_file("a/../../evil.mp4")], r"'\.\.' component"),
    "symlink": (
        [tar_file("ok.mp4"), tar_special("link.mp4", tarfile.SYMTYPE, "/etc/passwd")],
        "is a symlink",
    ),
    "hardlink": (
        [tar_file("ok.mp4"), tar_special("hard.mp4", tarfile.LNKTYPE, "ok.mp4")],
        "is a hardlink",
    ),
    "device": ([tar_special("dev", tarfile.CHRTYPE)], "device or fifo"),
    "fifo": ([tar_special("fifo", tarfile.FIFOTYPE)], "device or fifo"),
    "oversized": (
        [tar_file("ok.mp4"), tar_file("big.mp4", b"x" * 11)],
        r"'big\.mp4' is 11 bytes, over the limit",
    ),
}
ZIP_BAD = {
    "absolute": ([("/etc/evil.mp4", b"x")], "absolute path"),
    "dotdot": ([("ok.mp4", b"x"), ("../evil.mp4", b"x")], r"'\.\.' component"),
    "backslash-dotdot": ([("..\\evil.mp4", b"x")], r"'\.\.' component"),
    "symlink": ([("ok.mp4", b"x"), zip_symlink("link.mp4", "/etc/passwd")], "is a symlink"),
    "oversized": (
        [("ok.mp4", b"x"), ("big.mp4", b"x" * 11)],
        r"'big\.mp4' is 11 bytes, over the limit",
    ),
}
# zip has no hardlinks; its symlinks are the unix mode bits, as Info-ZIP writes them


@pytest.mark.parametrize("case", list(TAR_BAD) + [f"zip-{k}" for k in ZIP_BAD])
def test_safe_extract_refuses_and_writes_nothing(tmp_path, case):
    if case.startswith("zip-"):
        members, why = ZIP_BAD[case[4:]]
        arch = make_zip(tmp_path / "s.zip", members)
    else:
        members, why = TAR_BAD[case]
        arch = make_tar(tmp_path / "s.tar", members)
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=why) as err:
        safe_extract(arch, dest, max_member_bytes=10)
    assert "s." in str(err.value) and isinstance(err.value, SourceError)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        arch.name
    ]  # nothing written, not even temp


def test_safe_extract_not_an_archive(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"not an archive")
    with pytest.raises(SourceError, match="not a tar"):
        safe_extract(tmp_path / "x.bin", tmp_path / "out", max_member_bytes=10)


def test_a_machine_fault_while_extracting_is_no_fault_of_the_archive(tmp_path, monkeypatch):
    """A full disk (or a folder without write permission, an I/O error) while extracting is the
    machine's: SourceUnavailable, which fails the ingest job (it is retried, and the next run
    extracts again) instead of an error row that loses the archive's videos for good. An
    archive that cannot be read is the archive's: a SourceError, an error row."""
    import errno
    import gzip
    import lzma

    from helpers import make_tar as tar_of

    from clipsift.sources import extract

    arch = tar_of(tmp_path / "a.tar", {"a.mp4": b"x" * 100})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(extract, "_copy", full)
        with pytest.raises(SourceUnavailable, match=r"a\.tar: cannot extract into .*No space left"):
            safe_extract(arch, tmp_path / "out", max_member_bytes=1000)
    assert not (tmp_path / "out").exists()

    cut = tmp_path / "cut.tar.gz"  # a gzip stream cut short: the archive's fault
    cut.write_bytes(gzip.compress(arch.read_bytes())[:-30])
    # a file, then a folder of the same name (File exists); a corrupt xz stream
    clash = tar_of(tmp_path / "clash.tar", {"a": b"x", "a/b.mp4": b"y"})
    xz = tmp_path / "bad.tar.xz"
    xz.write_bytes(lzma.compress(arch.read_bytes())[:40] + b"\0" * 200)
    for bad in (cut, clash, xz):
        with pytest.raises(SourceError, match=f"{bad.name}: cannot extract") as err:
            safe_extract(bad, tmp_path / "out2", max_member_bytes=1000)
        assert not isinstance(err.value, SourceUnavailable), bad.name


# ---------------------------------------------------------------- fetch_archive (real huggingface_hub, offline)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A huggingface_hub cache holding datasets org/clips at COMMIT (= main), in offline mode."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "datasets--org--clips"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text(COMMIT)
    members = [
        tar_file("clips/a.mp4", b"aaa"),
        tar_file("clips/a.txt", b"  a cat on a mat\n"),
        tar_file("clips/b.mp4", b"bbb"),
        tar_file("clips/b.json", json.dumps({"caption": "b caption", "other": 1}).encode()),
        tar_file("clips/c d.MKV", b"ccc"),
        tar_file("clips/c d.json", b"{not json"),
        tar_file("readme.txt", b"hello"),
        # what a Mac adds: resource forks beside the files, and in zips a __MACOSX folder
        tar_file("clips/._a.mp4", b"\x00\x05\x16\x07"),
        tar_file("__MACOSX/clips/._b.mp4", b"\x00\x05\x16\x07"),
        tar_file(".cache/x.mp4", b"xxx"),
    ]
    make_tar(touch(repo / "snapshots" / COMMIT / "train/000.tar"), members)
    # HF_HUB_OFFLINE / HF_HUB_CACHE are read when huggingface_hub is imported: patch the constants too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return cache


def hf_source(**kw) -> dict:
    return {
        "name": "hf",
        "type": "hf_archives",
        "repo": "org/clips",
        "shards": ["train/000.tar"],
        **kw,
    }


@pytest.mark.parametrize("revision", ["main", COMMIT])
def test_fetch_archive_from_cache(tmp_path, hub_cache, revision):
    dest = tmp_path / "extracted/000"
    items = fetch_archive(hf_source(revision=revision), "train/000.tar", dest)
    assert [it.id for it in items] == [slug_id("clips/a"), slug_id("clips/b"), slug_id("clips/c d")]
    a, b, c = items
    assert a.uri == f"hf://datasets/org/clips@{revision}/train/000.tar#clips/a.mp4"
    assert a.path == str(dest / "clips/a.mp4") and Path(a.path).read_bytes() == b"aaa"
    assert a.extra == {"archive": "train/000.tar", "member": "clips/a.mp4"}
    assert a.caption == "a cat on a mat"  # {stem}.txt
    assert b.caption == "b caption"  # {stem}.json, caption_key
    assert c.caption is None and c.extra["member"] == "clips/c d.MKV"  # bad sidecar: no caption


def test_fetch_archive_cache_dir_key_and_caption_key(tmp_path, hub_cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    items = fetch_archive(
        hf_source(cache_dir=str(hub_cache), caption_key="other"), "train/000.tar", tmp_path / "x"
    )
    assert [it.caption for it in items] == ["a cat on a mat", "1", None]


def test_fetch_archive_missing_archive_is_a_clear_error(tmp_path, hub_cache):
    from huggingface_hub.errors import LocalEntryNotFoundError

    with pytest.raises(
        SourceError,
        match=r"train/999\.tar in dataset repo org/clips@main: not in the local Hub cache and offline",
    ) as err:
        fetch_archive(hf_source(), "train/999.tar", tmp_path / "out")
    assert isinstance(err.value.__cause__, LocalEntryNotFoundError)
    assert not hf_archive.is_retryable(err.value.__cause__)  # offline: no point retrying
    assert not (tmp_path / "out").exists()
    with pytest.raises(SourceError, match="not in the local Hub cache"):
        fetch_archive(hf_source(revision="v9"), "train/000.tar", tmp_path / "out")


# ---------------------------------------------------------------- retries


def flaky(failures: list[BaseException], result="ok"):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return result

    return fn, calls


def test_with_retries_retries_transient_errors():
    fn, calls = flaky([ConnectionError("reset"), TimeoutError("slow")])
    slept = []
    assert with_retries(fn, 5, base_delay=0.5, sleep=slept.append) == "ok"
    assert len(calls) == 3 and slept == [0.5, 1.0]  # exponential backoff
    fn, calls = flaky([ConnectionError("reset")] * 2)
    assert with_retries(fn, 3, base_delay=0) == "ok"


def test_with_retries_gives_up():
    fn, calls = flaky([ConnectionError("down")] * 9)
    with pytest.raises(ConnectionError):
        with_retries(fn, 3, base_delay=0)
    assert len(calls) == 3
    fn, calls = flaky([ValueError("bug")])
    with pytest.raises(ValueError):
        with_retries(fn, 5, base_delay=0)
    assert len(calls) == 1  # not retryable


def http_error(cls, status: int):
    import httpx2

    response = httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/x"))
    return cls(f"HTTP {status}", response=response)


def test_is_retryable_classification():
    import httpx2
    from huggingface_hub import errors

    assert hf_archive.is_retryable(http_error(errors.HfHubHTTPError, 503))
    assert hf_archive.is_retryable(http_error(errors.HfHubHTTPError, 429))
    assert not hf_archive.is_retryable(http_error(errors.HfHubHTTPError, 403))
    assert not hf_archive.is_retryable(http_error(errors.RepositoryNotFoundError, 404))
    assert not hf_archive.is_retryable(http_error(errors.RemoteEntryNotFoundError, 404))
    assert hf_archive.is_retryable(httpx2.ConnectError("refused"))

    def wrapped(cause):
        try:
            raise errors.LocalEntryNotFoundError("no file") from cause
        except errors.LocalEntryNotFoundError as e:
            return e

    assert hf_archive.is_retryable(wrapped(httpx2.ReadTimeout("slow")))
    assert hf_archive.is_retryable(wrapped(http_error(errors.HfHubHTTPError, 502)))
    assert not hf_archive.is_retryable(wrapped(errors.OfflineModeIsEnabled("offline")))


def test_fetch_archive_retries_then_maps_errors(tmp_path, hub_cache, monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors

    real = huggingface_hub.hf_hub_download
    failures = [http_error(errors.HfHubHTTPError, 503), http_error(errors.HfHubHTTPError, 429)]
    calls = []

    def download(**kw):
        calls.append(kw)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return real(**kw)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(hf_archive, "BASE_DELAY", 0)
    monkeypatch.setenv("MY_TOKEN", "hf_secret")
    items = fetch_archive(hf_source(token_env="MY_TOKEN"), "train/000.tar", tmp_path / "out")
    assert len(items) == 3 and len(calls) == 3
    assert calls[0]["token"] == "hf_secret" and calls[0]["repo_type"] == "dataset"

    calls.clear()
    failures[:] = [http_error(errors.HfHubHTTPError, 401)] * 9
    with pytest.raises(
        SourceError, match=r"access denied \(HTTP 401\); put a valid token in \$MY_TOKEN"
    ) as err:
        fetch_archive(hf_source(token_env="MY_TOKEN"), "train/000.tar", tmp_path / "out")
    assert len(calls) == 1 and "hf_secret" not in str(err.value)

    calls.clear()
    failures[:] = [http_error(errors.GatedRepoError, 403)] * 9
    with pytest.raises(SourceError, match="gated"):
        fetch_archive(hf_source(), "train/000.tar", tmp_path / "out")
    assert len(calls) == 1

    calls.clear()
    failures[:] = [http_error(errors.HfHubHTTPError, 500)] * 9
    with pytest.raises(SourceError, match=r"download failed after 4 attempt\(s\)"):
        fetch_archive(hf_source(retries=4), "train/000.tar", tmp_path / "out")
    assert len(calls) == 4


# ---------------------------------------------------------------- archive bombs


def zeros_zip(path: Path, members: dict[str, int]) -> Path:
    """A deflated zip of members made of zeros (about 1000:1)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, size in members.items():
            zf.writestr(name, b"\0" * size)
    return path


def written_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "members",
    [{"huge.mp4": 48 << 20}, {f"part{i:02d}.mp4": 1 << 20 for i in range(40)}],
    ids=["one-huge-member", "many-large-members"],
)
def test_bombs_are_refused_before_writing(tmp_path, members):
    arch = zeros_zip(tmp_path / "bomb.zip", members)
    with pytest.raises(UnsafeArchiveError, match=r"max_ratio\)\): refused as an archive bomb"):
        safe_extract(arch, tmp_path / "out", limits=Limits(max_member_bytes=4 << 30))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]  # nothing written


def test_a_lying_header_is_refused(tmp_path):
    """Central directory patched to declare 100 bytes for a 4 MiB member: the declared sizes
    pass, the reader stops at the declared size, and the archive is refused, writing nothing."""
    arch = zeros_zip(tmp_path / "liar.zip", {"a.mp4": 4 << 20})
    data = bytearray(arch.read_bytes())
    cd = data.rindex(b"PK\x01\x02")  # central directory entry: uncompressed size at +24
    data[cd + 24 : cd + 28] = (100).to_bytes(4, "little")
    lh = data.index(b"PK\x03\x04")  # the local header's too, at +22
    data[lh + 22 : lh + 26] = (100).to_bytes(4, "little")
    arch.write_bytes(bytes(data))
    with pytest.raises(SourceError):
        safe_extract(arch, tmp_path / "out", limits=Limits(max_member_bytes=4 << 30))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liar.zip"]


def test_bytes_are_counted_while_writing(tmp_path):
    """Whatever the headers said, a stream that yields more stops before the cap is passed."""
    arch = tmp_path / "a.zip"
    arch.write_bytes(b"x" * 1000)  # 1000 bytes: at max_ratio 2, the archive may write 2000
    limits = Limits(max_member_bytes=1 << 20, max_ratio=2.0)
    dst = tmp_path / "member"
    with pytest.raises(UnsafeArchiveError, match="archive bomb"):
        _copy(
            io.BytesIO(b"\0" * (3 << 20)), dst, arch, "member", limits, [0], limits.total_for(arch)
        )
    assert dst.stat().st_size <= 2000


def test_video_archives_pass_the_default_limits(tmp_path, tiny_videos):
    """Real videos barely compress: a tar.gz of them extracts under the defaults."""
    arch = make_tar(
        tmp_path / "v.tar.gz",
        [tar_file(f"{k}.mp4", p.read_bytes()) for k, p in sorted(tiny_videos.items())],
    )
    out = safe_extract(arch, tmp_path / "out", limits=Limits(max_member_bytes=4 << 30))
    assert out == ["a.mp4", "b.mp4", "c.mp4"]
    assert written_bytes(tmp_path / "out") == sum(p.stat().st_size for p in tiny_videos.values())


def test_a_bomb_in_a_hub_shard_becomes_an_error_row(tmp_path, hub_cache):
    """Through the source's own limits (schema defaults), down to ingest's error row."""
    from clipsift.ingest import shard_items

    snap = hub_cache / "datasets--org--clips" / "snapshots" / COMMIT / "train"
    zeros_zip(snap / "001.zip", {"clips/huge.mp4": 24 << 20})
    src = hf_source(shards=["train/001.zip"], max_member_mb=4096, max_extracted_mb=65536)
    with pytest.raises(UnsafeArchiveError, match="archive bomb"):
        fetch_archive(src | {"max_ratio": 20}, "train/001.zip", tmp_path / "x")
    plan = pd.DataFrame(
        [{"source": "hf", "id": "train/001.zip", "uri": "hf://x", "path": None, "caption": None,
          "extra": "{}", "kind": "archive", "archive": "train/001.zip"}]
    )  # fmt: skip
    rows = shard_items(plan, src | {"max_ratio": 20}, "hf-00000", tmp_path / "results")
    assert len(rows) == 1 and "archive bomb" in rows["error"].iloc[0]
    assert not (tmp_path / "results" / "work" / "hf-00000" / "extracted").exists()


def test_accepting_gone_files_leaves_shards_with_unreachable_ones(tmp_path):
    """``accept-changes --gone`` re-ingests whole shards: one that also holds a file whose
    folder is missing or empty (a source not mounted) is left, or that file would become an
    error row too (review); ``--unreachable`` takes it."""
    from clipsift.sources.changes import accept_changes, find_changes

    here, mount = tmp_path / "here", tmp_path / "mnt"
    here.mkdir()
    mount.mkdir()  # the mount point of an unmounted share: empty
    (here / "kept.mp4").write_bytes(b"k")
    results = tmp_path / "results"
    shards = {"s-0": [here / "gone.mp4", here / "kept.mp4"], "s-1": [here / "gone2.mp4",
              mount / "far.mp4"]}  # fmt: skip
    (results / "plan" / "shards").mkdir(parents=True)
    (results / "plan" / "shards.json").write_text(
        json.dumps({"shards": [{"name": s, "items": 2} for s in shards]})
    )
    for shard, paths in shards.items():  # planned, then ingested (later: not pending)
        pd.DataFrame({"video_id": [p.stem for p in paths]}).to_parquet(
            results / "plan" / "shards" / f"{shard}.parquet"
        )
    kept = os.stat(here / "kept.mp4")
    for shard, paths in shards.items():
        (results / "shards" / shard).mkdir(parents=True)
        rows = [{"path": str(p), "size": 1, "mtime_ns": kept.st_mtime_ns, "hash": "0" * 128,
                 "error": None} for p in paths]  # fmt: skip
        pd.DataFrame(rows).to_parquet(results / "shards" / shard / "source.parquet")
        later = kept.st_mtime + 3600  # after the plan files, and after any stamp below
        os.utime(results / "shards" / shard / "source.parquet", (later, later))
    whats = {Path(c.path).name: c.what for c in find_changes(results)}
    assert whats["gone.mp4"] == "gone" and whats["gone2.mp4"] == "gone"
    assert whats["far.mp4"] == "unreachable"
    assert accept_changes(results, gone=True) == (["s-0"], ["s-1"])
    assert accept_changes(results, gone=True, unreachable=True)[0] == ["s-0", "s-1"]
