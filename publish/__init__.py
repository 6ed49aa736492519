"""Releases: a curation rewritten, exported, carded and published to a target as one transaction."""
