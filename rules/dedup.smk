# Near-duplicate clips across the whole dataset (clipsift/dedup.py): one global job over the
# embeddings every shard's model scorer stored. select reads its table (rules/common.smk,
# dedup_output()), so it runs only when near_duplicates.enabled is true.
if stage_on("near_duplicates"):
    ND = config["near_duplicates"]

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
