"""`clipsift` command: plan, sample, status, accept-changes, shards, slurm-profile, config-doc."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _load_config(paths: list[str]) -> dict:
    from .config import load_run_config

    return load_run_config(paths)


def _size(text: str) -> tuple[int, int]:
    """``WxH`` (e.g. 640x360) as (w, h); argparse reports anything else as a usage error."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: WIDTHxHEIGHT, e.g. 640x360") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"{text!r}: even sizes of at least 16 px")
    return w, h


CONFIG_HELP = (
    "a config file of the run, as given to snakemake's --configfile; repeat it for several, in "
    "that order (--config a.yaml --config b.yaml): merged over config/config.yaml as snakemake "
    "merges them (default: config/config.yaml alone)"
)


def cmd_plan(args) -> int:
    from . import runlock
    from .plan import update_plan

    config = _load_config(args.config)
    try:  # a run reads the plan's files: they change under none (--drop removes some)
        runlock.acquire(config["results"])
    except runlock.ResultsLocked as exc:
        raise SystemExit(str(exc)) from None
    try:
        shards = update_plan(config, drop=tuple(args.drop))
    finally:
        runlock.release(config["results"])
    print(f"{len(shards)} shard(s), {sum(s['items'] for s in shards)} item(s)")
    return 0


def cmd_sample(args) -> int:
    from .sample import generate_sample

    truth = generate_sample(args.out, size=args.size, fps=args.fps, seed=args.seed)
    print(f"wrote {len(truth)} sample videos to {args.out}")
    return 0


def cmd_status(args) -> int:
    from .status_view import status_table, watch

    if args.results and args.results_dir and args.results != args.results_dir:
        raise SystemExit("clipsift status: give the results folder once (RESULTS or --results)")
    args.results = args.results or args.results_dir
    config = None if args.results else _load_config(args.config)
    results = Path(args.results or config["results"])
    if args.watch:
        watch(results, interval=args.interval, until_done=args.until_done, config=config)
    else:
        print(status_table(results, config=config, sources=not args.no_sources))
    return 0


def cmd_accept_changes(args) -> int:
    from .config import with_defaults
    from .sources.changes import accept_changes

    cfg = _load_config(args.config) if not args.results else {}
    results = Path(args.results or cfg["results"])
    algo = with_defaults("ingest", cfg.get("ingest"))["hash"]
    shards, held = accept_changes(
        results, algo, gone=args.gone or args.unreachable, unreachable=args.unreachable
    )
    if held:
        print(
            f"{len(held)} shard(s) left as they are: they hold files in folders that are missing "
            f"or empty (not mounted?): {', '.join(held)}. Mount them, or pass --unreachable to "
            "drop those files too."
        )
    if not shards and not held:
        print(f"{results}: no ingested source changed{' or is gone' if args.gone else ''}")
    elif shards:
        print(f"{len(shards)} shard(s) will be ingested again by the next run: {', '.join(shards)}")
    return 0


def cmd_shards(args) -> int:
    from .sources.hf_archive import hub_archives

    sha, archives = hub_archives(
        args.repo, repo_type=args.repo_type, revision=args.revision, prefix=args.prefix
    )
    if args.first:
        archives = archives[: args.first]
    text = f"# {args.repo_type} {args.repo} at {args.revision} (commit {sha})\n"
    text += "".join(f"{a}\n" for a in archives)
    if args.out:
        Path(args.out).write_text(text)
        print(
            f"{args.out}: {len(archives)} archive(s) of {args.repo}; use it as the source's "
            f"shards_file, with revision: {sha} to pin them"
        )
    else:
        print(text, end="")
    return 0 if archives else 1


def cmd_slurm_profile(args) -> int:
    from .slurm import install_profile

    dest, what = install_profile(Path(args.dest) if args.dest else None)
    if what == "kept":
        print(
            f"{dest} exists (a site profile?): kept. `snakemake --profile slurm` uses it, with "
            "clipsift's per-rule resources from profiles/default; or run "
            "`snakemake --profile profiles/slurm` for clipsift's own."
        )
    else:
        print(f"{dest} -> profiles/slurm ({what}): `snakemake --profile slurm` finds it")
    return 0


def cmd_config_doc(args) -> int:
    from .config import schema_markdown, update_reference

    if args.write:
        print(f"{args.write}: {'updated' if update_reference(args.write) else 'up to date'}")
    else:
        print(schema_markdown())
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(prog="clipsift", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("plan", help="(re)plan shards: add new videos of the sources to new shards")
    sp.add_argument("--config", action="append", default=[], metavar="FILE", help=CONFIG_HELP)
    sp.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="SOURCE",
        help="forget the planned videos of source SOURCE first (repeat for several): a source "
        "renamed or removed leaves the plan; one still in the config, moved or pointed "
        "elsewhere, is planned anew from what it lists now",
    )
    sp.set_defaults(func=cmd_plan)
    sp = sub.add_parser("sample", help="generate the sample videos with their ground truth")
    sp.add_argument("out", nargs="?", default="sample/videos", help="folder (sample/videos)")
    sp.add_argument("--size", type=_size, default="640x360", help="WIDTHxHEIGHT (640x360)")
    sp.add_argument("--fps", type=int, default=30, help="frames per second (30)")
    sp.add_argument("--seed", type=int, default=0, help="textures and shot order (0)")
    sp.set_defaults(func=cmd_sample)
    sp = sub.add_parser("status", help="progress of a run, per stage (works while it runs)")
    sp.add_argument(
        "results_dir", nargs="?", metavar="RESULTS", help="the results folder (same as --results)"
    )
    sp.add_argument("--config", action="append", default=[], metavar="FILE", help=CONFIG_HELP)
    sp.add_argument("--results", default=None, help="the results folder (default: the config's)")
    sp.add_argument("--watch", action="store_true", help="print it again every --interval s")
    sp.add_argument("--interval", type=float, default=10.0, help="seconds between updates")
    sp.add_argument(
        "--until-done", action="store_true", help="with --watch: stop when the run has ended"
    )
    sp.add_argument(
        "--no-sources",
        action="store_true",
        help="leave out the sources that changed since ingest (a stat per video; slow storage)",
    )
    sp.set_defaults(func=cmd_status)
    sp = sub.add_parser(
        "accept-changes",
        help="re-ingest the shards whose source files changed since they were ingested",
    )
    sp.add_argument("--config", action="append", default=[], metavar="FILE", help=CONFIG_HELP)
    sp.add_argument("--results", default=None, help="the results folder (default: the config's)")
    sp.add_argument(
        "--gone",
        action="store_true",
        help="also re-ingest the shards whose source files are gone, dropping their clips from "
        "the dataset (a takedown); without it, clips of deleted files are kept",
    )
    sp.add_argument(
        "--unreachable",
        action="store_true",
        help="with --gone, also files whose folder is missing or empty (by default such files, "
        "and their shards, are left: an unmounted source would empty the dataset)",
    )
    sp.set_defaults(func=cmd_accept_changes)
    sp = sub.add_parser(
        "shards", help="list a Hub dataset's archive shards (tar, tar.gz, zip) into a shards_file"
    )
    sp.add_argument("repo", help="the Hub repo id, e.g. org/name")
    sp.add_argument("--revision", default="main", help="branch, tag or commit (main)")
    sp.add_argument(
        "--repo-type", default="dataset", choices=["dataset", "model", "space"], help="(dataset)"
    )
    sp.add_argument("--prefix", default="", help="only archives under this path, e.g. train/")
    sp.add_argument("--first", type=int, default=None, help="only the first N, in name order")
    sp.add_argument("--out", default=None, help="write the shards_file here (default: print)")
    sp.set_defaults(func=cmd_shards)
    sp = sub.add_parser(
        "slurm-profile", help="link profiles/slurm where `snakemake --profile slurm` finds it"
    )
    sp.add_argument("--dest", default=None, help="default: ~/.config/snakemake/slurm")
    sp.set_defaults(func=cmd_slurm_profile)
    sp = sub.add_parser("config-doc", help="print the config reference (markdown) from the schema")
    sp.add_argument(
        "--write",
        metavar="FILE",
        help="update the reference between the markers in FILE (docs/config.md)",
    )
    sp.set_defaults(func=cmd_config_doc)
    args = p.parse_args(argv)
    from .config import ConfigError
    from .plan import PlanError
    from .sources.base import SourceError

    try:
        return args.func(args)
    except (ConfigError, PlanError, SourceError) as exc:  # the user's to fix: no traceback
        msg = str(exc)
        print(msg if msg.startswith("clipsift") else f"clipsift {args.cmd}: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
