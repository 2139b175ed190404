"""Sources that changed since they were ingested.

A source file overwritten in place (same name, new content) must not be silently mixed into an
old build: its clips, scores and captions describe the old content. Before a run schedules any
job, the process that schedules them compares every ingested source file's size and mtime
(recorded in ``source.parquet``) with the file now; a file whose mtime changed but whose size did
not is hashed again, so a copy or a ``touch`` that kept the bytes is not a change. A changed file
stops the run with the list and the command that accepts them (``clipsift accept-changes``: it
stamps those shards' plan files, the ingest rule's input, with the new sizes and mtimes, so the
next run ingests them again and redoes everything downstream. A stamp, not a touch: Snakemake
skips an input whose recorded checksum is unchanged, and removing an output whose downstream
outputs exist reruns nothing).

Files under the results folder (extracted archive members, generated videos) are the pipeline's
own and are skipped. A file that is gone does not stop the run: sources are often removed once
processed, and the dataset keeps what was made from them. But the run says so, with the command
that drops their clips (``clipsift accept-changes --gone``: their shards are ingested again and
the gone files become error rows; a takedown). Nothing else drops them: before, a deleted video
stayed in the dataset, or left it only when another file of its shard changed. Files whose
folder is missing too are told apart (a source folder not mounted: ``--gone`` leaves them, as
following it would empty the dataset), and a file ingested as missing that is there again
stops the run as a changed one does. The check costs a stat per video and a small read per
shard; ``ingest.check_sources: false`` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import with_defaults
from ..ingest import content_hash
from ..io.atomic import write_parquet

SHOWN = 20  # changed files listed in the message


@dataclass
class Change:
    shard: str
    path: str
    what: str  # "size", "content", "back", "gone", "unreachable"


class SourcesChanged(RuntimeError):
    pass


def _shards(results: Path) -> list[str]:
    manifest = results / "plan" / "shards.json"
    if not manifest.exists():
        return []
    return [s["name"] for s in json.loads(manifest.read_text())["shards"]]


def pending(results: Path, shard: str) -> bool:
    """Whether the shard will be ingested again anyway (its plan file, accepted, is newer)."""
    plan = results / "plan" / "shards" / f"{shard}.parquet"
    src = results / "shards" / shard / "source.parquet"
    try:
        return plan.stat().st_mtime_ns > src.stat().st_mtime_ns
    except FileNotFoundError:
        return True


# hex digest length -> the ``ingest.hash`` algorithm that makes it: a source.parquet is read
# with the algorithm it was hashed with, whatever config the command was given
# (``accept-changes --results`` knows none: a sha256 table was compared with blake2b digests)
ALGO_BY_LENGTH = {128: "blake2b", 64: "sha256", 40: "sha1", 32: "md5"}
# what each kind of change is called in the messages
SAID = {"size": "size changed", "content": "content changed", "back": "back since ingest"}


def find_changes(results: str | os.PathLike, hash_algo: str = "blake2b") -> list[Change]:
    """The ingested source files that changed (``size``, ``content``), that are ``gone``
    (their folder holds other files), ``unreachable`` (their folder is missing or empty: a
    source folder not mounted, or the empty mount point), or ``back`` (ingested as a missing
    file, there again)."""
    results = Path(results).absolute()
    own = os.fspath(results) + os.sep
    changes = []
    for shard in _shards(results):
        src = results / "shards" / shard / "source.parquet"
        if pending(results, shard):
            continue
        try:
            table = pd.read_parquet(src, columns=["path", "size", "mtime_ns", "hash", "error"])
        except (OSError, ValueError, KeyError):  # not ingested yet, or by an older clipsift
            continue
        for row in table.dropna(subset=["path"]).itertuples(index=False):
            path = os.path.abspath(row.path)
            if path.startswith(own):
                continue
            if pd.isna(row.mtime_ns):
                if row.error == "missing file" and os.path.exists(path):
                    changes.append(Change(shard, row.path, "back"))
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                what = "gone" if _holds_files(os.path.dirname(path)) else "unreachable"
                changes.append(Change(shard, row.path, what))
                continue
            except OSError:
                continue
            if st.st_size != row.size:
                changes.append(Change(shard, row.path, "size"))
            elif st.st_mtime_ns != row.mtime_ns:
                algo = ALGO_BY_LENGTH.get(len(str(row.hash)), hash_algo)
                if content_hash(path, algo) != row.hash:
                    changes.append(Change(shard, row.path, "content"))
    return changes


def check_sources(config: dict, results: str | os.PathLike, warn=None) -> None:
    """Raise :class:`SourcesChanged` when an ingested source file changed or is back; ``warn``
    (a logging function) gets the message on files that are gone or unreachable (see the
    module)."""
    ingest = with_defaults("ingest", config.get("ingest"))
    if not ingest["check_sources"]:
        return
    changes = find_changes(results, ingest["hash"])
    missing = [c for c in changes if c.what in ("gone", "unreachable")]
    changes = [c for c in changes if c.what in SAID]
    if missing and warn is not None:
        warn(gone_message(missing, results))
    if not changes:
        return
    raise SourcesChanged(
        f"clipsift: {len(changes)} source file(s) changed since they were ingested "
        f"({_n_shards(changes)} shard(s)); their clips, scores and dataset files describe the "
        "old content:\n"
        + _listed(changes, lambda c: f"{SAID[c.what]}; ")
        + "\nTo rebuild those shards from the new files, run\n"
        f"  clipsift accept-changes --results {results}\nthen the same snakemake command again "
        "(or put the old files back)."
    )


def gone_message(missing: list[Change], results) -> str:
    """The warning on ingested files that are gone, and on those whose folder is missing."""
    out = []
    for what, head, tail in (
        ("gone", "are gone", "To drop those clips (a takedown), run\n  clipsift accept-changes "
         f"--gone --results {results}\nthen the same snakemake command again: their shards are "
         "ingested again without them."),
        ("unreachable", "are in folders that are missing or empty (a source not mounted?)",
         "Mount it again. accept-changes --gone leaves them and their shards; if they were "
         "removed on purpose, accept-changes --gone --unreachable drops them too."),
    ):  # fmt: skip
        these = [c for c in missing if c.what == what]
        if these:
            out.append(
                f"clipsift: {len(these)} ingested source file(s) {head} ({_n_shards(these)} "
                "shard(s)); the dataset keeps the clips made from them:\n"
                + _listed(these, lambda c: "")
                + "\n"
                + tail
            )
    return "\n".join(out)


def status_lines(results: str | os.PathLike) -> list[str]:
    """``clipsift status``'s lines on the ingested sources: a count of each kind of change and
    the command that deals with it; none when every source is as ingested."""
    changes = find_changes(results)
    if not changes:
        return []
    counts = {w: sum(c.what == w for c in changes) for w in (*SAID, "gone", "unreachable")}
    said = {**SAID, "gone": "gone", "unreachable": "in folders missing or empty (not mounted?)"}
    lines = ["", "sources that differ from what was ingested (the next run says which):"]
    lines += [f"  {k:7d}  {said[w]}" for w, k in counts.items() if k]
    if any(counts[w] for w in SAID):
        lines.append(f"  the next run stops until: clipsift accept-changes --results {results}")
    if counts["gone"]:
        lines.append(f"  to drop the gone files' clips: clipsift accept-changes --gone --results "
                     f"{results}")  # fmt: skip
    return lines


def _n_shards(changes: list[Change]) -> int:
    return len({c.shard for c in changes})


def _listed(changes: list[Change], note) -> str:
    """The first ``SHOWN`` of ``changes`` a line each (``note(change)`` before its shard),
    and how many more."""
    lines = [f"  {c.path} ({note(c)}shard {c.shard})" for c in changes[:SHOWN]]
    if len(changes) > SHOWN:
        lines.append(f"  ... and {len(changes) - SHOWN} more")
    return "\n".join(lines)


def accept_changes(
    results: str | os.PathLike,
    hash_algo: str = "blake2b",
    gone: bool = False,
    unreachable: bool = False,
) -> tuple[list[str], list[str]]:
    """Make the next run ingest the shards with changed sources again (their plan file gets an
    ``accepted`` column: a digest of the changed files' new size and mtime); with ``gone``,
    also the shards with files that are gone (which then become error rows). A shard that
    holds unreachable files is left, unless ``unreachable``: ingested again, every file of it
    is looked at, and those files would become error rows too. Returns the shards to be
    ingested again, and those left for their unreachable files."""
    results = Path(results)
    found = find_changes(results, hash_algo)
    wanted = {"gone", "unreachable"} if unreachable else {"gone"} if gone else set()
    changes = [c for c in found if c.what in SAID or c.what in wanted]
    held = set() if unreachable else {c.shard for c in found if c.what == "unreachable"}
    shards = sorted({c.shard for c in changes} - held)
    for shard in shards:
        stats = sorted(_stat(c) for c in changes if c.shard == shard)
        plan = results / "plan" / "shards" / f"{shard}.parquet"
        items = pd.read_parquet(plan)
        items["accepted"] = hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]
        write_parquet(plan, items)
    return shards, sorted(held & {c.shard for c in changes})


def _holds_files(folder: str) -> bool:
    """Whether ``folder`` exists and holds anything: an unmounted share leaves its mount point,
    an empty folder."""
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


def _stat(change: Change) -> tuple:
    """``(path, size, mtime_ns)`` of a changed file now; a file that is gone has neither."""
    if change.what in ("gone", "unreachable"):
        return change.path, None, None
    if change.what == "back":
        return change.path, "back", None
    st = os.stat(change.path)
    return change.path, st.st_size, st.st_mtime_ns
