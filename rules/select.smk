# Selection reads stored measurements; all thresholds are its params. Calibration reads them too.
rule select:
    input:
        **filter_outputs(),
        clips=shard_path("clips.parquet"),
        scores=shard_path("scores.parquet"),
        dups=dedup_output(),
    output:
        shard_path("selection.parquet"),
    log:
        f"{R}/logs/select/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        # the caption tests are rule select_captions' (after the captions)
        select=with_filters(
            {k: v for k, v in config["select"].items() if k != "caption"},
            config["filters"],
        ),
    script:
        "../scripts/select.py"


rule select_captions:
    input:
        selection=shard_path("selection.parquet"),
        captions=shard_path("caption.json"),
    output:
        shard_path("selection_captioned.parquet"),
    log:
        f"{R}/logs/select_captions/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        caption=config["select"]["caption"],
    script:
        "../scripts/select.py"


rule calibrate:
    input:
        **all_filter_outputs(),
        clips=all_shards("clips.parquet"),
        scores=all_shards("scores.parquet"),
    output:
        report(
            directory(f"{R}/report/calibration"),
            patterns=["{name}.png", "{name}.html"],
            caption="../report/calibration.rst",
            category="Calibration",
        ),
    log:
        f"{R}/logs/calibrate.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        select=with_filters(config["select"], config["filters"]),
        quantiles=config["calibrate"]["quantiles"],
    script:
        "../scripts/calibrate.py"
