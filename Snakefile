# Snakemake workflow: finite-width Monte Carlo vs unified mean-field theory
# (Segadlo et al. 2022).  Thin entry point: configuration, validation, rules.
#
#   snakemake --cores 2                        # default reduced-statistics run
#   snakemake --cores 2 --config statistics=paper
#   snakemake --report report.html             # HTML report with all figures
from snakemake.utils import min_version

min_version("8.0")


# Config checks; a bad config stops here with one line naming the key (exit code 2).
include: "workflow/rules/config.smk"


check_config_syntax("config.yaml")


configfile: "config.yaml"


CONFIG = checked_config(config)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/plot.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/proportional.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        all_targets(),
