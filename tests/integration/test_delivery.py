"""End to end: simulated terminal → workers → collector → link → reference bridge (SQLite).

What the bridge stored is compared with what the terminal's deterministic history holds
for the same span, per symbol: every tick, once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from app.config import ClientConfig
from app.connector import WorkerState
from app.link.link import BridgeLink
from app.ports import free_ports
from app.runtime import Runtime
from app.security.secret import Secret
from app.server.server import ReferenceBackend
from app.server.store import TickStore
from app.terminal.market import DEFAULT_PROFILES, Market
from tests.conftest import wait_until
from tests.server.conftest import ADMIN_KEY, AUTH, KEYS

pytestmark = pytest.mark.slow

SYMBOLS = ["EURUSD", "GBPUSD", "XAUUSD"]


class Ports:
    def __init__(self) -> None:
        self.bridge, self.gateway, self.hub = free_ports(3)

    def backend(self, db: Path) -> ReferenceBackend:
        return ReferenceBackend(
            host="127.0.0.1",
            bridge_port=self.bridge,
            gateway_port=self.gateway,
            hub_port=self.hub,
            db_path=db,
            keys=KEYS,
        )

    def config(self, tmp_path: Path, rates: dict[str, float], **backend: object) -> ClientConfig:
        return ClientConfig.model_validate(
            {
                "terminals": [
                    {"symbols": list(rates), "rates": rates, "seed": 11, "market_hours": "always"}
                ],
                "pool": {"size": len(rates), "backoff": {"initial_s": 0.2, "maximum_s": 1.0}},
                "backend": {
                    "bridge_url": f"ws://127.0.0.1:{self.bridge}/ws",
                    "gateway_url": f"http://127.0.0.1:{self.gateway}",
                    "hub_url": f"http://127.0.0.1:{self.hub}",
                    "client_id": "test-desk",
                    "embedded": "never",
                    "spool_dir": str(tmp_path / "spool"),
                    "hub_heartbeat_s": 0.5,
                    "backoff": {"initial_s": 0.1, "maximum_s": 0.5},
                    **backend,
                },
            }
        )


@pytest.fixture
async def runtimes() -> AsyncIterator[list[Runtime]]:
    started: list[Runtime] = []
    yield started
    for rt in started:
        await rt.stop()


def now_msc() -> int:
    return int(time.time() * 1000)


def assert_stored_equals_history(
    backend_db: Path, rates: dict[str, float], start_msc: int, session: str
) -> int:
    """Every stored tick of every symbol equals the terminal's history, once."""
    store = TickStore(backend_db)
    try:
        market = Market(11, DEFAULT_PROFILES, rates)
        total = 0
        for sym in rates:
            got = store.read_ticks(client_id="test-desk", session=session, symbol=sym)
            assert len(got) > 0, f"nothing stored for {sym}"
            last = int(got["time_msc"][-1])
            expected = market.ticks_range(sym, start_msc, last + 1)
            assert len(got) <= len(expected)
            assert np.all(expected["time_msc"][len(got) :] == last)
            assert np.array_equal(got, expected[: len(got)]), f"{sym}: stored stream differs"
            total += len(got)
        return total
    finally:
        store.close()


def link_of(rt: Runtime) -> BridgeLink:
    assert rt.link is not None
    return rt.link


async def test_every_captured_tick_is_stored_once(tmp_path: Path, runtimes: list[Runtime]) -> None:
    ports = Ports()
    rates = dict.fromkeys(SYMBOLS, 2_000.0)
    async with ports.backend(tmp_path / "bridge.sqlite") as backend:
        start = now_msc()
        rt = Runtime(
            credential=Secret(ADMIN_KEY), config=ports.config(tmp_path, rates), start_msc=start
        )
        runtimes.append(rt)
        await rt.start()
        await wait_until(lambda: link_of(rt).state.ticks_acked > 20_000, 60, "20k acked ticks")
        await rt.stop()
        runtimes.remove(rt)
        state = link_of(rt).state
        assert state.backlog_ticks == 0
        assert state.ticks_acked == rt.collector.stats.ticks_total
        stats = backend.store.stats()
        assert stats["ticks_stored"] == rt.collector.stats.ticks_total
        assert stats["duplicate_batches"] == 0
        session = state.session
    stored = assert_stored_equals_history(tmp_path / "bridge.sqlite", rates, start, session)
    assert stored == state.ticks_acked


async def test_bridge_down_for_five_seconds_loses_and_doubles_nothing(
    tmp_path: Path, runtimes: list[Runtime]
) -> None:
    ports = Ports()
    db = tmp_path / "bridge.sqlite"
    rates = dict.fromkeys(SYMBOLS, 2_000.0)  # 6,000 ticks/s offered in total
    backend = ports.backend(db)
    await backend.start()
    start = now_msc()
    rt = Runtime(
        credential=Secret(ADMIN_KEY), config=ports.config(tmp_path, rates), start_msc=start
    )
    runtimes.append(rt)
    await rt.start()
    link = link_of(rt)
    await wait_until(lambda: link.state.ticks_acked > 10_000, 60, "first acks")
    await backend.stop()
    await wait_until(lambda: not link.state.connected, 30, "the link to notice the outage")
    down_since = time.monotonic()
    captured_at_outage = rt.collector.stats.ticks_total
    # The outage lasts at least 5 s while capture goes on at >= 5k ticks/s.
    await wait_until(lambda: time.monotonic() - down_since >= 5.0, 30, "5 s of outage")
    assert not link.state.connected
    during = rt.collector.stats.ticks_total - captured_at_outage
    assert during >= 5_000 * 5 * 0.8, f"only {during} ticks captured during the outage"
    assert link.state.backlog_ticks >= during
    backend = ports.backend(db)
    await backend.start()
    try:
        await wait_until(lambda: link.state.connected, 60, "reconnect")
        await rt.stop()
        runtimes.remove(rt)
        state = link.state
        assert state.backlog_ticks == 0
        stats = backend.store.stats()
    finally:
        await backend.stop()
    total = assert_stored_equals_history(db, rates, start, state.session)
    assert total == rt.collector.stats.ticks_total == state.ticks_acked
    assert stats["sessions"][0]["ticks"] == total


async def _garbage_bridge(ws: ServerConnection) -> None:
    await ws.recv()
    await ws.send(b"\xc1 this is not MessagePack")
    await ws.wait_closed()


async def test_garbage_from_the_bridge_resets_the_link_and_loses_nothing(
    tmp_path: Path, runtimes: list[Runtime]
) -> None:
    ports = Ports()
    rates = {"EURUSD": 1_000.0}
    async with serve(_garbage_bridge, "127.0.0.1", ports.bridge) as bad:
        start = now_msc()
        rt = Runtime(
            credential=Secret(ADMIN_KEY), config=ports.config(tmp_path, rates), start_msc=start
        )
        runtimes.append(rt)
        await rt.start()
        link = link_of(rt)
        await wait_until(
            lambda: "not a protocol v2 message" in link.state.last_error,
            30,
            "the garbage to be reported",
        )
        await wait_until(lambda: link.state.reconnects >= 2, 30, "reconnect attempts")
        assert link.state.ticks_acked == 0
        bad.close()
    db = tmp_path / "bridge.sqlite"
    async with ports.backend(db):
        await wait_until(lambda: link.state.connected, 60, "the real bridge")
        # On a loaded machine the worker may not have sent a tick yet; the point is
        # what happens to ticks, so have some delivered before stopping.
        await wait_until(lambda: link.state.ticks_acked > 0, 60, "ticks delivered")
        await rt.stop()
        runtimes.remove(rt)
    assert link.state.backlog_ticks == 0
    total = assert_stored_equals_history(db, rates, start, link.state.session)
    assert total == rt.collector.stats.ticks_total


async def test_hub_down_at_start_then_up_registers_and_capture_never_stops(
    tmp_path: Path, runtimes: list[Runtime]
) -> None:
    ports = Ports()
    rates = {"EURUSD": 200.0}
    rt = Runtime(credential=Secret(ADMIN_KEY), config=ports.config(tmp_path, rates))
    runtimes.append(rt)
    await rt.start()
    assert rt.hub is not None
    hub = rt.hub
    await wait_until(lambda: hub.state.last_error != "", 30, "the hub error to show")
    assert not hub.state.registered
    await wait_until(
        lambda: all(w.state is WorkerState.STREAMING for w in rt.pool.health()), 60, "streaming"
    )
    async with ports.backend(tmp_path / "b.sqlite") as backend:
        await wait_until(lambda: hub.state.registered, 60, "registration once the hub is up")
        await wait_until(
            lambda: link_of(rt).state.ticks_acked > 0, 60, "delivery once the bridge is up"
        )
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"{backend.hub_url}/api/services", headers=AUTH)
            services = answer.json()["services"]
        assert [s["service_id"] for s in services] == ["test-desk"]
        await rt.stop()
        runtimes.remove(rt)
