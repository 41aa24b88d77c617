"""radlens.cli."""
