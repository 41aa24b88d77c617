"""The pynetdicom transport fix of ``radlens.net``: a socket is closed even when its
``shutdown`` fails because the peer has already gone."""

from __future__ import annotations

import socket

from pynetdicom.transport import AssociationSocket

import radlens.net  # noqa: F401  (applies the fix)


class _Disconnected(socket.socket):
    def shutdown(self, how: int) -> None:
        raise OSError(107, "Transport endpoint is not connected")


def test_a_socket_whose_peer_has_gone_is_still_closed() -> None:
    sock = _Disconnected(socket.AF_INET, socket.SOCK_STREAM)
    holder = type("Holder", (), {"socket": sock})()
    AssociationSocket._shutdown_socket(holder)  # type: ignore[arg-type]
    assert sock.fileno() == -1  # closed


def test_no_socket_is_nothing_to_close() -> None:
    holder = type("Holder", (), {"socket": None})()
    AssociationSocket._shutdown_socket(holder)  # type: ignore[arg-type]
