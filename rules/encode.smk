# encode: VAE latents and text embeddings of every kept clip (one job per shard), then the trainer
# manifests over all shards. Only what changes the latents is in the encode rule's params, so a
# manifests option never re-encodes.


rule encode:
    input:
        clips=shard_path("clips.parquet"),
        source=shard_path("source.parquet"),
        selection=shard_path(selection_file()),
        scores=shard_path("scores.parquet"),
        # each frame's time: a variable-rate clip's frames are taken by time
        frames=shard_path("scan/frames.parquet"),
        # the caption stage's captions when that stage is on (encode then uses them)
        captions=lambda w: (
            shard_path("caption.json").format(shard=w.shard)
            if config.get("caption", {}).get("enabled")
            else []
        ),
    output:
        table=shard_path("latents.parquet"),
        dir=directory(shard_path("latents")),
    log:
        f"{R}/logs/encode/{{shard}}.log",
    conda:
        "../envs/clipsift.yaml"
    threads: 2
    resources:
        gpu=gpus_for(
            VAES.entry(config["encode"]["vae"]["name"]), config["encode"]["device"]
        ),
    params:
        # what changes the latents: everything but the manifests options
        encode={
            k: v
            for k, v in config["encode"].items()
            if k not in ("manifests", "enabled")
        },
        source=fetched_source,
    script:
        "../scripts/encode.py"


# The manifests point at the clip files that rule export_clips (rules/export.smk) writes.
rule manifests:
    input:
        latents=all_shards("latents.parquet"),
        clips=lambda w: [f"{R}/dataset/clips/{s}.parquet" for s in sorted(SHARDS)],
    output:
        directory(f"{R}/dataset/manifests"),
    log:
        f"{R}/logs/manifests.log",
    conda:
        "../envs/clipsift.yaml"
    params:
        manifests=config["encode"]["manifests"],
    script:
        "../scripts/manifests.py"
