"""radlens.zoo."""
