"""radlens.models."""
