"""The bottom layer: the canonical schema, sources, validation and quarantine, the ledger,
output files and export formats."""
