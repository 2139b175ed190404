# clipsift: raw videos -> clips -> filters and scores -> selection -> dataset.
# The stages live in rules/*.smk, the logic in the clipsift package, entry points in scripts/.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/generate.smk"
include: "rules/ingest.smk"
include: "rules/split.smk"
include: "rules/filters.smk"
include: "rules/score.smk"
include: "rules/select.smk"
include: "rules/dedup.smk"
include: "rules/caption.smk"
include: "rules/encode.smk"
include: "rules/export.smk"
include: "rules/publish.smk"


rule all:
    default_target: True
    input:
        all_targets(),
