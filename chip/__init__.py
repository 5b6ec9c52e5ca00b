"""neurosplit.chip."""
