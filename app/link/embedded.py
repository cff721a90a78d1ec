"""The embedded default: run the reference backend in a child process when none is there.

So that ``trading-client`` works end-to-end on a machine with no backend installed, a
bridge URL on this machine with nothing listening gets the reference backend started on
the configured ports. A remote backend is never shadowed.

The backend runs in a process of its own (:mod:`app.server.process`), not on the
client's loop: storing ticks in the desktop window's process cost the window most of a
core at 10k ticks/s. It starts and stops with the runtime and never outlives the app.

It accepts a random key made for this run (``EmbeddedBackend.credential``), for this
client's id only; the runtime's link and hub client present it (see
:mod:`app.server.process` for why a per-run key rather than one kept in the vault).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from app.config import BackendConfig
from app.ports import is_loopback
from app.server.process import BackendProcess, BackendProcessError

log = logging.getLogger(__name__)


class EmbeddedBackendError(RuntimeError):
    """The embedded backend was wanted but could not start (e.g. a port is taken).

    ``short`` is the cause in a few words for a status bar ("backend not started: port
    8000 in use"); the message has the whole text and the fix.
    """

    def __init__(self, text: str, short: str) -> None:
        super().__init__(text)
        self.short = short


def _short_cause(detail: str, ports: tuple[int, ...]) -> str:
    """ "port N in use" when the start error names one of ``ports`` as taken."""
    if "in use" in detail.lower():
        for port in ports:
            if re.search(rf"\b{port}\b", detail):
                return f"backend not started: port {port} in use"
        return "backend not started: a port is in use"
    return f"backend not started: {detail}"


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or default_port


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


class EmbeddedBackend(BackendProcess):
    """The runtime's handle on the embedded backend's process (``Runtime.embedded``).

    ``start`` raises :class:`EmbeddedBackendError` with a message the user can act on;
    it may be called again after ``stop`` (same ports, same database).
    """

    async def start(self) -> None:
        try:
            await super().start()
        except BackendProcessError as exc:
            numbers = (self.bridge_port, self.gateway_port, self.hub_port)
            ports = "/".join(map(str, numbers))
            if exc.kind == "os":
                text = (
                    f"the embedded backend could not start ({exc.detail}); free ports "
                    f"{ports} or set backend.embedded to 'never'"
                )
            else:
                text = f"the embedded backend could not start: {exc.detail}"
            raise EmbeddedBackendError(text, _short_cause(exc.detail, numbers)) from None
        log.info(
            "embedded reference backend (pid %s): %s, %s, %s (db %s)",
            self.pid,
            self.bridge_url,
            self.gateway_url,
            self.hub_url,
            self.db_path,
        )


async def start_embedded(config: BackendConfig) -> EmbeddedBackend | None:
    """Start the reference backend when the settings call for it; None when they don't."""
    backend = await prepare_embedded(config)
    if backend is not None:
        await backend.start()
    return backend


async def prepare_embedded(config: BackendConfig) -> EmbeddedBackend | None:
    """The reference backend the settings call for, not started yet (None when they call
    for none): its per-run key is known at once, so the runtime's links can be built and
    take ticks into their spool while its process starts (the window's cold start)."""
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
    return EmbeddedBackend(
        host="127.0.0.1" if host == "localhost" else host,
        bridge_port=bridge_port,
        gateway_port=gateway_port,
        hub_port=hub_port,
        db_path=db,
        client_id=config.effective_client_id(),
        demo_signals=config.demo_signals,
    )
