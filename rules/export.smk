# The dataset (clipsift/export.py): the kept clips as files, one job per shard; then, once, the
# metadata (+ WebDataset shards), the provenance, the dataset card and the report.
EXPORT = config["export"]
# EasyAnimate's train file names the clip files: only when they are written
EASYANIMATE = EXPORT["easyanimate"]["enabled"] and EXPORT["clips"]


# every shard's clip index (an input function, like all_shards)
CLIP_INDEXES = lambda wildcards: [
    f"{R}/dataset/clips/{s}.parquet" for s in sorted(SHARDS)
]


rule export_duplicates:
    input:
        sources=all_shards("source.parquet"),
    output:
        f"{R}/export/duplicates.parquet",
    log:
        f"{R}/logs/export_duplicates.log",
    conda:
        "../envs/clipsift.yaml"
    script:
        "../scripts/export.py"


# export_clips writes the clip files the trainer manifests point at (rule manifests reads its index).
rule export_clips:
    input:
        clips=shard_path("clips.parquet"),
        source=shard_path("source.parquet"),
        selection=shard_path(selection_file()),
        # videos duplicated across shards. Not ancient(): with Snakemake 9.27, when the job
        # making an ancient() input has to re-run (e.g. its code changed), the jobs after its
        # consumers are silently left out of the DAG. New shards therefore re-run every shard's
        # export_clips, which then only re-links the clips from results/cache/export/.
        duplicates=(
            f"{R}/export/duplicates.parquet" if EXPORT["dedupe_across_shards"] else []
        ),
    output:
        table=f"{R}/dataset/clips/{{shard}}.parquet",
        dir=directory(f"{R}/dataset/clips/{{shard}}"),
    log:
        f"{R}/logs/export_clips/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    threads: 4  # x264's fixed thread count (clipsift.split.clips.X264_THREADS)
    params:
        # what the clip files depend on
        export={k: EXPORT[k] for k in ("max_height", "crf", "preset", "link")},
        materialize=config["split"]["materialize"],
        source=fetched_source,
    script:
        "../scripts/export_clips.py"


rule export:
    input:
        **all_filter_outputs(),
        sources=all_shards("source.parquet"),
        clips=all_shards("clips.parquet"),
        selection=all_shards(selection_file()),
        scores=all_shards("scores.parquet"),
        clip_files=CLIP_INDEXES if EXPORT["clips"] else [],
        captions=all_shards("caption.json") if stage_on("caption") else [],
        latents=all_shards("latents.parquet") if stage_on("encode") else [],
    output:
        **(
            {"webdataset": directory(f"{R}/dataset/webdataset")}
            if EXPORT["webdataset"]["enabled"]
            else {}
        ),
        **({"easyanimate": f"{R}/dataset/easyanimate.json"} if EASYANIMATE else {}),
        parquet=f"{R}/dataset/metadata.parquet",
        jsonl=f"{R}/dataset/metadata.jsonl",
        kept=f"{R}/dataset/kept.parquet",
        rejected=f"{R}/dataset/rejected.parquet",
    log:
        f"{R}/logs/export.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        export={
            k: EXPORT[k]
            for k in ("dedupe_across_shards", "clips", "webdataset", "easyanimate")
        },
        # a first look (limit_shards) or a calibration sample may keep nothing: only a whole
        # run stops when no clip is kept
        allow_empty=EXPORT["allow_empty"]
        or config["limit_shards"] is not None
        or config["calibrate"]["sample_size"] > 0,
    script:
        "../scripts/export.py"


rule provenance:
    input:
        metadata=f"{R}/dataset/metadata.parquet",
        dataset_files=[
            f"{R}/dataset/{name}"
            for name in (
                "metadata.parquet",
                "metadata.jsonl",
                "kept.parquet",
                "rejected.parquet",
                *(["easyanimate.json"] if EASYANIMATE else []),
            )
        ],
        sources=all_shards("source.parquet"),
        scores=all_shards("scores.parquet"),
        captions=all_shards("caption.json") if stage_on("caption") else [],
        latents=all_shards("latents.parquet") if stage_on("encode") else [],
    output:
        report(
            f"{R}/dataset/provenance.json",
            category="Dataset",
            labels={"file": "provenance.json"},
        ),
    log:
        f"{R}/logs/provenance.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        # the config that decides the content (publish settings excluded)
        config={k: v for k, v in config.items() if k != "publish"},
        plan={name: s["items"] for name, s in sorted(SHARDS.items())},
    script:
        "../scripts/export.py"


rule card:
    input:
        provenance=f"{R}/dataset/provenance.json",
    output:
        f"{R}/dataset/README.md",
    log:
        f"{R}/logs/card.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        card=EXPORT["card"],
        repo=config["publish"]["repo"],
        webdataset=EXPORT["webdataset"]["enabled"],
    script:
        "../scripts/export.py"


rule report:
    input:
        metadata=f"{R}/dataset/metadata.parquet",
        provenance=f"{R}/dataset/provenance.json",
    output:
        html=f"{R}/report/index.html",
        figures=report(
            directory(f"{R}/report/figures"),
            patterns=["{name}.png"],
            category="Dataset report",
        ),
    log:
        f"{R}/logs/report.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        report=config["report"],
    script:
        "../scripts/report.py"
