"""The examples in the feedback package's docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "radlens.feedback.records",
    "radlens.feedback.adjudication",
    "radlens.feedback.equipment",
    "radlens.feedback.queue",
    "radlens.feedback.drift",
    "radlens.feedback.monitor",
    "radlens.feedback.cases",
    "radlens.cli.monitor",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
