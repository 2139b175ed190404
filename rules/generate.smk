# Generated videos: a `generate` source's prompts become videos through a diffusers pipeline
# (clipsift/generators). Only prompt shards have this job; their ingest reads generated.parquet
# instead of the plan file (ingest_input in common.smk). Finished videos are also kept in
# {results}/cache/generate/{shard}/, outside the outputs, so a rerun generates only what is new.
from clipsift.generators import gpus_needed


rule generate:
    input:
        plan=f"{R}/plan/shards/{{shard}}.parquet",
    output:
        table=shard_path("generated.parquet"),
        videos=directory(shard_path("generated")),
    log:
        f"{R}/logs/generate/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    threads: 4
    resources:
        gpu=lambda wildcards: gpus_needed(source_of(wildcards)),
    params:
        source=source_of,
    script:
        "../scripts/generate.py"
