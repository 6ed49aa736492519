"""Curation stages (dedup, styles, scores, capabilities, selection) and the pipeline that runs
them over a pool."""
