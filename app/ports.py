"""Free loopback ports, for a backend that must come up on ports nobody else holds
(the GUI benchmark's embedded backends, the tests' servers), the URL of a service on
one, and whether a host is this machine."""

from __future__ import annotations

import ipaddress
import socket


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only ("localhost" or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def service_url(scheme: str, host: str, port: int, path: str = "") -> str:
    """``scheme://host:port/path``, with an IPv6 host in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}{path}"
