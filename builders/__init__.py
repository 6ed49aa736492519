"""Sources, the canonical schema, validation and quarantine, the demo pool, the ledger."""
