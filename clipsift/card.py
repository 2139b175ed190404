"""The dataset card: ``results/dataset/README.md`` with Hub metadata in its YAML front matter.

The front matter is written by huggingface_hub's own ``DatasetCardData`` (so the Hub and
``DatasetCard.load`` parse it): license, ``task_categories: [text-to-video]``,
``size_categories`` from the number of kept clips, tags, and ``configs`` pointing at the metadata
files, so ``datasets.load_dataset`` on the folder or the repo loads the kept clips by default.
The body says how the dataset was built (the funnel, the models, the thresholds, the export
settings, the config hash and code version from ``provenance.json``) and how to load it.
Nothing in it depends on the time, so a rebuild writes the same card.
"""

from __future__ import annotations

from huggingface_hub import DatasetCard, DatasetCardData

from . import filters
from .config import with_defaults
from .io.atomic import atomic_path
from .selection import rules, with_filters

SIZE_CATEGORIES = [
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
]  # fmt: skip


def size_category(n: int) -> str:
    """The Hub's size category of ``n`` rows (n<1K, 1K<n<10K, ..., n>1T)."""
    for bound, name in SIZE_CATEGORIES:
        if n < bound:
            return name
    return "n>1T"


def data_configs() -> list[dict]:
    """The card's ``configs``: the kept clips (default), every clip, the rejected clips.

    The WebDataset tars are not a config: ``datasets`` picks one builder for all the configs of
    a folder or repo, and these are parquet (the card says how to load the tars)."""
    return [
        {"config_name": "default", "data_files": [{"split": "train", "path": "kept.parquet"}]},
        {
            "config_name": "all_clips",
            "data_files": [{"split": "train", "path": "metadata.parquet"}],
        },
        {"config_name": "rejected", "data_files": [{"split": "train", "path": "rejected.parquet"}]},
    ]


def card_data(prov: dict, card_cfg: dict) -> DatasetCardData:
    kept = int(prov["counts"]["kept"])
    extra = {}
    for key in ("license_name", "license_link"):
        if card_cfg.get(key):
            extra[key] = card_cfg[key]
    return DatasetCardData(
        license=card_cfg.get("license") or "other",
        task_categories=["text-to-video"],
        size_categories=[size_category(kept)],
        tags=list(dict.fromkeys(["video", "clipsift", *(card_cfg.get("tags") or [])])),
        pretty_name=card_cfg.get("pretty_name") or None,
        configs=data_configs(),
        **extra,
    )


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def pipeline_steps(cfg: dict, counts: dict) -> list[str]:
    """What the pipeline did, for the card's first sentence: from the config and the counts."""
    scorers = sorted(n for n, c in (cfg.get("scorers") or {}).items() if c.get("enabled"))
    on = filters.enabled(cfg.get("filters") or {})
    steps = ["scene splitting", *(m.about for m in filters.measures() if m.name in on)]
    steps += [f"scores ({', '.join(scorers)})"] if scorers else []
    steps += ["selection with a reason for every rejected clip"]
    steps += ["captions"] if "captioned" in counts else []
    steps += ["VAE latents"] if "encoded" in counts else []
    return steps


def card_body(
    prov: dict, card_cfg: dict, *, repo: str | None = None, webdataset: bool = False
) -> str:
    """The card's markdown: what it is, its files, how it was built, how to load it."""
    counts = prov["counts"]
    name = card_cfg.get("pretty_name") or "Video clips built with clipsift"
    parts = [f"# {name}", ""]
    if card_cfg.get("description"):
        parts += [card_cfg["description"].strip(), ""]
    parts += [
        f"{counts['kept']} video clips for training video generation models, selected from "
        f"{counts['split']['clips']} scene clips of {counts['ingest']['ok']} source videos by "
        f"clipsift (a Snakemake pipeline: {', '.join(pipeline_steps(prov['config'], counts))}).",
        "",
    ]
    parts += _files_section(prov["config"], counts, webdataset)
    parts += _built_section(prov)
    parts += _load_section(repo, webdataset)
    return "\n".join(parts)


def _files_section(cfg: dict, counts: dict, webdataset: bool) -> list[str]:
    exp = with_defaults("export", cfg.get("export"))
    parts = [
        "## Files",
        "",
        "- `kept.parquet`: one row per kept clip (the `default` config): `file` (the clip, "
        "relative to this folder), `caption`, the source fields, every filter and score column.",
        "- `metadata.parquet` / `metadata.jsonl`: every clip, kept or not (`keep`, `reasons`); "
        "the `all_clips` config.",
        "- `rejected.parquet`: the rejected clips and why (`reasons`); the `rejected` config. "
        "Rejected clips are listed, not included.",
    ]
    if exp["clips"]:
        parts.append(
            "- `clips/{shard}/{clip_id}.mp4`: the kept clips, H.264, cut frame-accurately"
            + (f", at most {exp['max_height']}p (shorter side)" if exp.get("max_height") else "")
            + "."
        )
    if exp["clips"] and exp["easyanimate"]["enabled"]:
        parts.append(
            "- `easyanimate.json`: EasyAnimate's train file over the kept clips "
            "(`--train_data_meta`; `--train_data_dir` is this folder)."
        )
    if webdataset:
        parts.append(
            "- `webdataset/*.tar`: the kept clips as WebDataset shards grouped by resolution and "
            "frame count (`{key}.mp4`, `{key}.json`, `{key}.txt`); `webdataset/index.json` lists them."
        )
    if "encoded" in counts:
        parts.append("- `manifests/`: trainer manifests (HunyuanVideo, LLaVA conversations, "
                     "EasyAnimate, prompts/videos lists) over the encoded clips.")  # fmt: skip
    parts += ["- `provenance.json`: the config and its hash, code and package versions, models, "
              "seeds and the counts at every stage.", ""]  # fmt: skip
    return parts


def _built_section(prov: dict) -> list[str]:
    """How it was built: the funnel, the rejections, the thresholds, the models, the settings."""
    cfg, counts = prov["config"], prov["counts"]
    exp = with_defaults("export", cfg.get("export"))
    parts = ["## How it was built", "", "### Funnel", ""]
    parts.append(_table(["stage", "unit", "count"],
                        [[r["stage"], r["unit"], r["count"]] for r in counts["funnel"]]))  # fmt: skip
    rej = counts["select"]["rejected_by"]
    if rej:
        parts += ["", "Rejections per reason (a clip may have several):", ""]
        parts.append(_table(["reason", "clips"], [[k, v] for k, v in rej.items()]))
    sel = with_filters(cfg["select"], cfg["filters"])
    tests = [[name, col, op, bound, "record only" if rec else "reject"]
             for name, col, op, bound, rec in rules(sel)]  # fmt: skip
    parts += ["", "### Thresholds", ""]
    parts.append(
        _table(["test", "column", "keeps", "bound", "effect"], tests) if tests else "None."
    )
    parts += ["", "### Models", ""]
    models = prov.get("models") or []
    parts.append(
        _table(["stage", "model", "revision"],
               [[m["stage"], m["id"], m.get("resolved_revision") or m.get("revision")] for m in models])
        if models else "No learned model (CPU measurements only)."
    )  # fmt: skip
    split = cfg.get("split") or {}
    return parts + [
        "",
        "### Settings",
        "",
        (
            "- clips: whole source videos (split.mode whole)"
            if split.get("mode") == "whole"
            else f"- scenes: `{(cfg.get('scan') or {}).get('detector')}` detector; clips of "
            f"{split.get('min_seconds')} to {split.get('max_seconds')} s"
        ),
        f"- export: crf {exp.get('crf')}, preset `{exp.get('preset')}`, max height "
        f"{exp.get('max_height')}",
        f"- config sha256: `{prov['config_sha256']}`",
        f"- code: clipsift {prov['code']['clipsift']}"
        + (f" (`{prov['code']['git_describe']}`)" if prov["code"].get("git_describe") else ""),
        "",
    ]


def _load_section(repo: str | None, webdataset: bool) -> list[str]:
    where = repo or "path/to/dataset"
    parts = [
        "## Load it",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'clips = load_dataset("{where}", split="train")  # the kept clips',
        f'everything = load_dataset("{where}", "all_clips", split="train")',
        'print(clips[0]["file"], clips[0]["caption"])',
        "```",
        "",
    ]
    if webdataset:
        tars = (
            f"hf://datasets/{repo}/webdataset/*.tar" if repo else "path/to/dataset/webdataset/*.tar"
        )
        parts += [
            "The WebDataset shards load with the `webdataset` builder (or the webdataset library):",
            "",
            "```python",
            "from datasets import Video, load_dataset",
            "",
            f'tars = load_dataset("webdataset", data_files={{"train": "{tars}"}}, split="train")',
            'tars = tars.cast_column("mp4", Video(decode=False))  # bytes; decoding needs torchcodec',
            "```",
            "",
        ]
    if repo:
        return parts + [
            "The video files are in the repository beside the metadata:",
            "",
            "```python",
            "from huggingface_hub import hf_hub_download",
            "",
            f'path = hf_hub_download("{repo}", clips[0]["file"], repo_type="dataset")',
            "```",
            "",
        ]
    return parts + ["`file` is relative to the dataset folder.", ""]


def make_card(
    prov: dict, card_cfg: dict, *, repo: str | None = None, webdataset: bool = False
) -> DatasetCard:
    data = card_data(prov, card_cfg)
    content = f"---\n{data.to_yaml()}\n---\n\n{card_body(prov, card_cfg, repo=repo, webdataset=webdataset)}"
    card = DatasetCard(content)  # parses it back: a card the Hub cannot read fails here
    return card


def write_card(
    path, prov: dict, card_cfg: dict, *, repo: str | None = None, webdataset: bool = False
) -> DatasetCard:
    card = make_card(prov, card_cfg, repo=repo, webdataset=webdataset)
    with atomic_path(path) as tmp:
        tmp.write_text(str(card) if str(card).endswith("\n") else f"{card}\n", encoding="utf-8")
    return card
