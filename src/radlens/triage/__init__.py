"""radlens.triage."""
