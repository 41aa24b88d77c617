"""radlens: an open, offline-first AI second reader for medical imaging."""

__version__ = "0.1.0"
