"""radlens.report."""
