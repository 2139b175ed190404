"""`clipsift` command: plan, sample, status, config-doc."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _load_config(path: str) -> dict:
    from .config import load_config

    return load_config(path)


def cmd_plan(args) -> int:
    from .plan import update_plan

    shards = update_plan(_load_config(args.config))
    print(f"{len(shards)} shard(s), {sum(s['items'] for s in shards)} item(s)")
    return 0


def cmd_sample(args) -> int:
    from .sample import generate_sample

    w, h = (int(v) for v in args.size.split("x"))
    truth = generate_sample(args.out, size=(w, h), fps=args.fps, seed=args.seed)
    print(f"wrote {len(truth)} sample videos to {args.out}")
    return 0


def cmd_status(args) -> int:
    from .status import status_table

    results = Path(args.results or _load_config(args.config)["results"])
    print(status_table(results))
    return 0


def cmd_config_doc(args) -> int:
    from .config import schema_markdown, update_readme

    if args.write:
        print(f"{args.write}: {'updated' if update_readme(args.write) else 'up to date'}")
    else:
        print(schema_markdown())
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(prog="clipsift", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("plan", help="(re)plan shards: add new videos of the sources to new shards")
    sp.add_argument("--config", default="config/config.yaml")
    sp.set_defaults(func=cmd_plan)
    sp = sub.add_parser("sample", help="generate the sample videos with their ground truth")
    sp.add_argument("out", nargs="?", default="sample/videos")
    sp.add_argument("--size", default="640x360")
    sp.add_argument("--fps", type=int, default=30)
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(func=cmd_sample)
    sp = sub.add_parser("status", help="progress of a run, per stage (works while it runs)")
    sp.add_argument("--config", default="config/config.yaml")
    sp.add_argument("--results", default=None)
    sp.set_defaults(func=cmd_status)
    sp = sub.add_parser("config-doc", help="print the config reference (markdown) from the schema")
    sp.add_argument(
        "--write", metavar="README", help="update the reference between the markers in this file"
    )
    sp.set_defaults(func=cmd_config_doc)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
