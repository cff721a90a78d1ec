"""Free loopback ports, for a backend that must come up on ports nobody else holds
(the GUI benchmark's embedded backends, the tests' servers)."""

from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago.

    All ``n`` sockets are held open while the ports are picked, so the list has no
    duplicates; another process may still take one before it is used.
    """
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
