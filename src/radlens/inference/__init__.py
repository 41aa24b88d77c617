"""radlens.inference."""
