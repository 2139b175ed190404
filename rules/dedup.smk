# Near-duplicate clips across the whole dataset (clipsift/dedup.py): one global job over the
# embeddings every shard's model scorer stored. select reads its table (rules/common.smk,
# dedup_output()), so it runs only when near_duplicates.enabled is true.
if stage_on("near_duplicates"):
    ND = config["near_duplicates"]
    if ND["embeddings"] not in scorers_on("gpu"):
        raise ValueError(
            f"near_duplicates.embeddings: {ND['embeddings']!r} is not an enabled model scorer "
            f"(enabled: {', '.join(scorers_on('gpu')) or 'none'}); enable it under scorers:"
        )
    if ND["keep_best_by"] and ND["keep_best_by"].split(".")[0] not in enabled_scorers():
        raise ValueError(
            f"near_duplicates.keep_best_by: {ND['keep_best_by']!r} is not a column of an "
            "enabled scorer ({scorer}.{column}, e.g. aesthetic.score)"
        )

    rule near_duplicates:
        input:
            embeddings=all_shards(f"embeddings/{ND['embeddings']}.npy"),
            scores=all_shards("scores.parquet"),
        output:
            f"{R}/dedup/near_duplicates.parquet",
        log:
            f"{R}/logs/near_duplicates.log",
        conda:
            "../envs/clipsift.yaml"
        threads: 2
        resources:
            gpu=0 if ND["device"] == "cpu" else 1,
        params:
            cfg=ND,
        script:
            "../scripts/dedup.py"
