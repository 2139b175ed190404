# Upload of results/dataset/ to a Hugging Face Hub dataset repo (clipsift/publish.py). Only on
# demand: `snakemake publish` (or the target results/dataset/.published.json); never in rule all.
# The token comes from $HF_TOKEN (publish.token_env) and is written nowhere. A local rule: under
# SLURM it runs where snakemake runs, which usually has the network that compute nodes lack.


rule publish:
    input:
        metadata=f"{R}/dataset/metadata.parquet",
        jsonl=f"{R}/dataset/metadata.jsonl",
        kept=f"{R}/dataset/kept.parquet",
        rejected=f"{R}/dataset/rejected.parquet",
        provenance=f"{R}/dataset/provenance.json",
        card=f"{R}/dataset/README.md",
        clip_files=CLIP_INDEXES if EXPORT["clips"] else [],
        webdataset=(
            f"{R}/dataset/webdataset" if EXPORT["webdataset"]["enabled"] else []
        ),
        manifests=f"{R}/dataset/manifests" if stage_on("encode") else [],
        # streaming: after every shard's own commit, so the card and tables come last
        uploads=(
            shard_files("upload.json")
            if config["streaming"]["enabled"] and config["streaming"]["upload"]
            else []
        ),
    output:
        f"{R}/dataset/.published.json",
    log:
        f"{R}/logs/publish.log",
    localrule: True
    conda:
        "../envs/clipsift.yaml"
    params:
        publish=config["publish"],
        shards=sorted(SHARDS),
    script:
        "../scripts/publish.py"
