"""The embedded default: run the reference backend in-process when none is there.

So that ``trading-client`` works end-to-end on a machine with no backend installed, a
bridge URL on this machine with nothing listening gets the reference backend started on
the configured ports. A remote backend is never shadowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from app.config import BackendConfig
from app.server.server import ReferenceBackend

log = logging.getLogger(__name__)


class EmbeddedBackendError(RuntimeError):
    """The embedded backend was wanted but could not start (e.g. a port is taken)."""


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or default_port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def default_db_path() -> Path:
    return platformdirs.user_data_path("trading-client") / "reference-backend.sqlite"


async def start_embedded(config: BackendConfig) -> ReferenceBackend | None:
    """Start the reference backend when the settings call for it; None when they don't."""
    if not config.enabled or config.embedded == "never":
        return None
    host, bridge_port = _host_port(config.bridge_url, 80)
    if config.embedded == "auto":
        if not is_loopback(host):
            return None
        if await is_listening(host, bridge_port):
            log.info(
                "a data bridge already listens on %s:%d; not starting the embedded one",
                host,
                bridge_port,
            )
            return None
    _, gateway_port = _host_port(config.gateway_url, 80)
    _, hub_port = _host_port(config.hub_url, 80)
    db = config.embedded_db or default_db_path()
    db.parent.mkdir(parents=True, exist_ok=True)
    backend = ReferenceBackend(
        host="127.0.0.1" if host == "localhost" else host,
        bridge_port=bridge_port,
        gateway_port=gateway_port,
        hub_port=hub_port,
        db_path=db,
    )
    try:
        await backend.start()
    except OSError as exc:
        with contextlib.suppress(Exception):
            await backend.stop()
        raise EmbeddedBackendError(
            f"the embedded backend could not start ({exc.strerror or exc}); free ports "
            f"{bridge_port}/{gateway_port}/{hub_port} or set backend.embedded to 'never'"
        ) from None
    log.info(
        "embedded reference backend: %s, %s, %s (db %s)",
        backend.bridge_url,
        backend.gateway_url,
        backend.hub_url,
        db,
    )
    return backend
