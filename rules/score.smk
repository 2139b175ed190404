# One job per (shard, scorer); a scorer is named by its config key (clipsift/scorers REGISTRY).
rule score_cpu:
    input:
        clips=shard_path("clips.parquet"),
        source=shard_path("source.parquet"),
        samples=shard_path("scan/samples.parquet"),
    output:
        shard_path("scores/{scorer}.parquet"),
    log:
        f"{R}/logs/score/{{scorer}}/{{shard}}.log",
    wildcard_constraints:
        scorer="|".join(scorers_on("cpu")) or "no_cpu_scorer",
    conda:
        "../envs/clipsift.yaml"
    params:
        cfg=lambda w: config["scorers"][w.scorer],
        source=fetched_source,
    script:
        "../scripts/score.py"


rule merge_scores:
    input:
        lambda w: expand(
            shard_path("scores/{scorer}.parquet"),
            shard=w.shard,
            scorer=enabled_scorers(),
        ),
    output:
        shard_path("scores.parquet"),
    log:
        f"{R}/logs/merge_scores/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    script:
        "../scripts/merge_scores.py"


rule score_gpu:
    input:
        clips=shard_path("clips.parquet"),
        source=shard_path("source.parquet"),
    output:
        scores=shard_path("scores/{scorer}.parquet"),
        embeddings=shard_path("embeddings/{scorer}.npy"),
    log:
        f"{R}/logs/score/{{scorer}}/{{shard}}.log",
    wildcard_constraints:
        scorer="|".join(scorers_on("gpu")) or "no_gpu_scorer",
    conda:
        "../envs/clipsift.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        cfg=lambda w: config["scorers"][w.scorer],
        source=fetched_source,
    script:
        "../scripts/score.py"
