"""DICOM networking (pynetdicom): the C-STORE SCP with C-ECHO, and the SCU.

Importing this package closes a socket leak of pynetdicom 3.0's transport:
``AssociationSocket._shutdown_socket`` calls ``shutdown`` then ``close`` in one ``try``, so
when ``shutdown`` fails (``ENOTCONN``: the peer already closed, as after an A-ABORT) the socket
is never closed and lingers until garbage collection (a ``ResourceWarning``, and a file
descriptor held meanwhile by a long-running SCP). :func:`close_after_shutdown` always closes.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from pynetdicom.transport import AssociationSocket


def close_after_shutdown(self: Any) -> None:
    """Shut the association's socket down if it still can be, then always close it."""
    sock = self.socket
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already disconnected: closing is all that is left
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


AssociationSocket._shutdown_socket = close_after_shutdown  # type: ignore[method-assign]
