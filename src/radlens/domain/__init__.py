"""Typed domain objects shared by radlens packages. No I/O, no heavy imports."""
