"""Run a decoder in a child process, so that a decoder that aborts cannot take radlens down.

GDCM (JPEG baseline, extended and lossless) ends the whole process with ``abort()`` on
some malformed streams (an uncaught C++ exception; found by fuzzing, see
``benchmarks/fuzz.md``), which no ``try`` can catch. :func:`run_isolated` calls a function
in a child started by the ``forkserver`` method (a clean process, never a fork of the
threaded server), sends the result back through a pipe, and turns the child's death or
a run past ``timeout_s`` into a :class:`~radlens.errors.PixelDataError`. A child serves
one call: nothing a bad input did to it survives.

Cost: a fork of the preloaded fork server and one copy of the input and of the output
through the pipe, a few milliseconds for a radiograph. Decoders that raise Python
exceptions (pydicom's, pylibjpeg's, pyjpegls) run in process; only the ones that abort
are sent here (see ``radlens.io.pixels``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from radlens.errors import InputError, PixelDataError

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 120.0
_PRELOAD = ["radlens.io.pixels"]


def run_isolated(
    fn: Callable[..., T], *args: Any, location: str, timeout_s: float = DEFAULT_TIMEOUT_S
) -> T:
    """``fn(*args)`` in a child process; its InputError comes back as raised.

    ``fn`` and its arguments must be picklable (a module-level function).

    Raises:
        InputError: what ``fn`` raised (its typed InputError subclass).
        PixelDataError: ``fn`` raised anything else, the child died (a decoder's abort),
            or it ran past ``timeout_s``.

    Example:
        >>> run_isolated(divmod, 7, 2, location="x")  # doctest: +SKIP
        (3, 1)
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, fn, args), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise PixelDataError(location, f"the decoder ran past {timeout_s:g} s; stopped")
        try:
            status, value = parent.recv()
        except (EOFError, OSError):
            process.join(5)
            raise PixelDataError(
                location, f"the decoder crashed (exit code {process.exitcode}); input refused"
            ) from None
    finally:
        parent.close()
        if process.is_alive():
            process.kill()
        process.join(5)
        process.close()
    if status == "ok":
        result: T = value
        return result
    if status == "input_error":
        kind, path, reason = value
        raise kind(path, reason)
    raise PixelDataError(location, f"the decoder failed: {value}")


def _child(conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        result: tuple[str, Any] = ("ok", fn(*args))
    except InputError as exc:  # sent as parts: its constructor takes (path, reason)
        result = ("input_error", (type(exc), exc.path, exc.reason))
    except BaseException as exc:  # noqa: BLE001 - everything goes back as a message
        result = ("error", " ".join(f"{type(exc).__name__}: {exc}".split())[:300])
    conn.send(result)
    conn.close()
