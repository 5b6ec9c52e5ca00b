"""neurosplit.actors."""
