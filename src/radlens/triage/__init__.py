"""Worklist priority from findings."""
