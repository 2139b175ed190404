# clipsift: raw videos -> clips -> filters and scores -> selection -> dataset.
# The stages live in rules/*.smk, the logic in the clipsift package, entry points in scripts/.
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from clipsift.config import ConfigError, check_yaml, validate_config

min_version("9.0")

# a YAML mistake named by file, line and column before Snakemake reads the file
try:
    check_yaml("config/config.yaml")
except ConfigError as exc:
    raise WorkflowError(str(exc))


configfile: "config/config.yaml"


# the schema's defaults filled in; an error names the wrong keys (not the whole schema)
try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc))


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
include: "rules/stream.smk"


rule all:
    default_target: True
    input:
        all_targets(),
