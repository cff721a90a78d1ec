"""The window's cold start order (#15): capture does not wait for the embedded backend.

The links and their spool exist before the first worker runs, so ticks are captured,
spooled and drawn while the backend's process is still starting; the links connect once
it listens, and the backend then stores every tick captured, the early ones included,
once. A backend that does not start leaves the links presenting the configured login.

Real worker processes, the real embedded backend in its child process, real sockets;
the backend's start is only held back (an event) to widen the window being tested.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.link.embedded import EmbeddedBackend
from app.runtime import Runtime
from app.security.secret import Secret
from app.server.server import ReferenceBackend
from app.session import DesktopSession
from app.session_view import SessionState
from tests.conftest import wait_until
from tests.integration.test_embedded import Ports, link_of
from tests.server.conftest import ADMIN_KEY, KEYS

pytestmark = pytest.mark.slow


@pytest.fixture
def held_backend(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """The embedded backend's start waits for this event (then starts for real)."""
    release = asyncio.Event()
    real: Callable[[EmbeddedBackend], Awaitable[None]] = EmbeddedBackend.start

    async def held(self: EmbeddedBackend) -> None:
        await release.wait()
        await real(self)

    monkeypatch.setattr(EmbeddedBackend, "start", held)
    return release


async def test_ticks_are_captured_and_shown_while_the_backend_starts(
    tmp_path: Path, held_backend: asyncio.Event
) -> None:
    ports = Ports()
    session = DesktopSession.with_settings(
        tmp_path / "client-config.json", ports.config(tmp_path, {"EURUSD": 500.0})
    )
    starting = asyncio.create_task(session.start())
    try:
        # Before the backend listens: the chart and Market Watch draw live ticks.
        def shown() -> int:
            quote = session.snapshot().quotes.get("EURUSD")
            return quote.ticks if quote is not None else 0

        await wait_until(lambda: shown() > 200, 60, "ticks on screen")
        assert not starting.done()
        assert session.state is SessionState.STARTING
        assert session.runtime is None  # intents wait for the start to finish
        assert session.capturing
        bars = session.chart_bars("EURUSD", "M1")
        assert bars is not None
        assert bars.bid is not None
        early = session.snapshot().ticks_total
        held_backend.set()
        await starting
        runtime = session.runtime
        assert runtime is not None
        assert runtime.embedded is not None
        embedded = runtime.embedded
        await wait_until(
            lambda: link_of(runtime).state.ticks_acked > early + 200, 60, "acks of the backlog"
        )
    finally:
        held_backend.set()
        if not starting.done():
            await asyncio.gather(starting, return_exceptions=True)
        await session.stop()
    captured = runtime.collector.stats.ticks_total
    stats = await asyncio.to_thread(embedded.stats)
    # Every tick captured, the ones from before the backend listened included, was
    # stored once (the backend's own database is the truth).
    assert stats["ticks_stored"] == captured
    assert captured > early


async def test_a_backend_that_does_not_start_leaves_the_configured_login(
    tmp_path: Path,
) -> None:
    """An external bridge holds the ports: the embedded one cannot start ("always"), and
    the link, built with the embedded backend's per-run key, logs in to the external
    one with the configured credential instead."""
    ports = Ports()
    external = ReferenceBackend(
        host="127.0.0.1",
        bridge_port=ports.bridge,
        gateway_port=ports.gateway,
        hub_port=ports.hub,
        db_path=tmp_path / "ext.sqlite",
        keys=KEYS,
    )
    async with external:
        rt = Runtime(ports.config(tmp_path), credential=Secret(ADMIN_KEY))
        try:
            await rt.start()
            assert rt.embedded is None
            assert rt.embedded_error is not None
            await wait_until(
                lambda: link_of(rt).state.ticks_acked > 0, 30, "acks from the external bridge"
            )
        finally:
            await rt.stop()
