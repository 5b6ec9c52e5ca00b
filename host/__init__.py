"""neurosplit.host."""
