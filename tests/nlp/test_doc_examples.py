"""The examples in the ``radlens.nlp`` docstrings run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["alignment", "context", "evaluate", "hl7", "lexicon", "mentions", "sections"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"radlens.nlp.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
