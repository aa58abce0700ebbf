"""Software-defined assets: thin wiring from partitions and resources to the domain functions."""

import warnings

import dagster as dg

# Backfill policies and multi-to-single-dimension partition mappings are marked beta in Dagster
# 1.13; we depend on them knowingly (the version is pinned), so the warning is noise for users.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
