"""Warning scopes that hold beside other threads.

Up to Python 3.13 ``warnings.catch_warnings`` swaps the process-wide filter list (and, when
recording, ``showwarning``) and puts back what it saved when it exits. Two threads inside
such scopes at once undo each other: the first to exit drops the other's "ignore", so a
warning held back in one thread escapes (an error under pytest's ``filterwarnings =
error``), and a record taken in one thread collects another thread's warnings (one file's
read warnings reported against another file). The server reads, decodes and writes DICOM
in job workers, the DICOM listener and request threads at once, and FastAPI builds its
fields inside ``catch_warnings`` too.

So every warning scope in radlens goes through this module and holds :data:`LOCK` for its
length; ``create_app`` builds its routes and its OpenAPI document under the same lock. A
scope is for local work only (reading, decoding, writing a data set): code inside one must
never wait on another thread, which may need the lock to answer (a C-STORE sent inside a
scope to radlens's own listener would wait until the DIMSE timeout).

Example:
    >>> import warnings
    >>> with recording() as caught:
    ...     warnings.warn("odd value")
    >>> [str(w.message) for w in caught]
    ['odd value']
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

LOCK = threading.RLock()
"""Held by every warning scope; re-entrant, so scopes nest within one thread."""


@contextmanager
def ignoring(category: type[Warning] = Warning) -> Iterator[None]:
    """Warnings of ``category`` raised in the block are dropped."""
    with LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        yield


@contextmanager
def recording() -> Iterator[list[warnings.WarningMessage]]:
    """Every warning raised in the block is kept in the yielded list, none shown."""
    with LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


@contextmanager
def raising(category: type[Warning]) -> Iterator[None]:
    """Warnings of ``category`` raised in the block are raised as exceptions."""
    with LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", category)
        yield
