"""A service posts signals to the real gateway; the bridge routes them to the client it
names over real sockets; the client acknowledges, executes (auto) or waits (manual),
and its outcome is readable at the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.server import ReferenceBackend
from app.server.users import Principal
from app.trading.intent import Origin
from app.trading.view import SignalState
from tests.conftest import wait_until
from tests.server.conftest import ADMIN_KEY, KEYS
from tests.server.conftest import poll_until as ask_until
from tests.signals.conftest import RecordingExecutor, get, now_ms, post, signal_body, signal_client

pytestmark = pytest.mark.timeout(120)

SERVICE_KEY = "signal-service-key-0123456789abcdefghijkl"
CLIENT = "desk-1"


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[ReferenceBackend]:
    keys = {**KEYS, SERVICE_KEY: Principal("@svc", frozenset({CLIENT}))}
    async with ReferenceBackend(
        bridge_port=0,
        gateway_port=0,
        hub_port=0,
        db_path=tmp_path / "b.sqlite",
        keys=keys,
        demo_signals=False,
    ) as running:
        yield running


async def test_post_is_validated_with_one_line_reasons(backend: ReferenceBackend) -> None:
    gw = backend.gateway_url
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"side": "hold"}, 400, "'side' must be 'buy' or 'sell'"),
        ({"volume": 0}, 400, "'volume' must be"),
        ({"colour": "red"}, 400, "unknown field `colour`"),
        ({"valid_until_ms": now_ms() - 1_000}, 422, "in the past"),
    ]
    for i, (change, status, text) in enumerate(cases):
        answer = await post(gw, SERVICE_KEY, signal_body(CLIENT, f"bad-{i}", **change))
        assert answer.status_code == status, answer.text
        assert text in answer.json()["message"]
        assert "\n" not in answer.json()["message"]
    other = await post(gw, SERVICE_KEY, signal_body("desk-9", "x"))
    assert other.status_code == 403
    nobody = await post(gw, "wrong-token", signal_body(CLIENT, "y"))
    assert nobody.status_code == 401
    first = await post(gw, SERVICE_KEY, signal_body(CLIENT, "dup"))
    assert first.status_code == 201
    again = await post(gw, SERVICE_KEY, signal_body(CLIENT, "dup"))
    assert again.status_code == 409
    assert again.json()["error"] == "duplicate"
    assert [s.signal.id for s in backend.signals.list(CLIENT)] == ["dup"]
    # Another client's signal is not found, whoever asks.
    assert (await get(gw, SERVICE_KEY, "/api/v1/signals/dup")).status_code == 200
    assert (await post(gw, ADMIN_KEY, signal_body("desk-9", "theirs"))).status_code == 201
    assert (await get(gw, SERVICE_KEY, "/api/v1/signals/theirs")).status_code == 404
    assert (await get(gw, SERVICE_KEY, "/api/v1/signals?client_id=desk-9")).status_code == 403


async def test_auto_executes_once_manual_waits_and_outcomes_reach_the_gateway(
    backend: ReferenceBackend, tmp_path: Path
) -> None:
    gw = backend.gateway_url
    executor = RecordingExecutor()
    async with signal_client(
        backend.bridge_url, CLIENT, ADMIN_KEY, tmp_path / "signals.json", executor, auto=("auto",)
    ) as (desk, link):
        await wait_until(lambda: link.state.connected, 30, "the link")
        assert (await post(gw, SERVICE_KEY, signal_body(CLIENT, "a1", "auto"))).status_code == 201
        assert (await post(gw, SERVICE_KEY, signal_body(CLIENT, "m1", "manual"))).status_code == 201
        await wait_until(lambda: len(executor.intents) == 1, 30, "the automatic execution")
        (intent,) = executor.intents
        assert (intent.signal_id, intent.source, intent.origin) == ("a1", "auto", Origin.SIGNAL)

        async def state_of(sid: str, state: str) -> bool:
            doc = (await get(gw, SERVICE_KEY, f"/api/v1/signals/{sid}")).json()
            return bool(doc["state"] == state)

        await ask_until(lambda: state_of("a1", "executed"), what="a1's outcome at the gateway")
        doc = (await get(gw, SERVICE_KEY, "/api/v1/signals/a1")).json()
        assert doc["outcome"]["ticket"] == 3001
        assert doc["outcome"]["price"] == 1.1
        assert doc["received_at_ms"] is not None
        assert doc["outcome"]["latency_ms"] >= 0
        await ask_until(lambda: state_of("m1", "received"), what="m1's receipt")
        entry = desk.snapshot().get("m1")
        assert entry is not None
        assert entry.state is SignalState.WAITING
        assert len(executor.intents) == 1  # the manual one waits for the trader
        assert desk.accept("m1") == ""
        await ask_until(lambda: state_of("m1", "executed"), what="m1 executed")
        assert [i.signal_id for i in executor.intents] == ["a1", "m1"]
        assert "is executed" in desk.accept("m1")
        # A dismissed one is reported as such; every signal arrived exactly once.
        assert (await post(gw, SERVICE_KEY, signal_body(CLIENT, "m2", "manual"))).status_code == 201
        await wait_until(lambda: desk.snapshot().get("m2") is not None, 30, "m2")
        assert desk.dismiss("m2") == ""
        await ask_until(lambda: state_of("m2", "dismissed"), what="m2 dismissed")
        assert desk.snapshot().duplicates == 0
        listed = (await get(gw, SERVICE_KEY, f"/api/v1/signals?client_id={CLIENT}")).json()
        assert {s["id"]: s["state"] for s in listed["signals"]} == {
            "a1": "executed",
            "m1": "executed",
            "m2": "dismissed",
        }


async def test_a_signal_posted_while_the_client_is_away_waits_for_it(
    backend: ReferenceBackend,
) -> None:
    gw = backend.gateway_url
    assert (await post(gw, SERVICE_KEY, signal_body(CLIENT, "early"))).status_code == 201
    body = signal_body(CLIENT, "gone", valid_until_ms=now_ms() + 300)
    assert (await post(gw, SERVICE_KEY, body)).status_code == 201
    await ask_until(lambda: _state(gw, "gone", "expired"), what="'gone' expired at the backend")
    executor = RecordingExecutor()
    async with signal_client(backend.bridge_url, CLIENT, ADMIN_KEY, None, executor) as (desk, _):
        await wait_until(lambda: desk.snapshot().get("early") is not None, 30, "'early'")
        await ask_until(lambda: _state(gw, "early", "received"), what="its receipt")
        assert desk.snapshot().get("gone") is None  # expired before the client came


async def _state(gateway: str, sid: str, state: str) -> bool:
    doc = (await get(gateway, SERVICE_KEY, f"/api/v1/signals/{sid}")).json()
    return bool(doc["state"] == state)


async def test_a_waiting_signal_expires_with_the_reason(
    backend: ReferenceBackend, tmp_path: Path
) -> None:
    gw = backend.gateway_url
    executor = RecordingExecutor()
    async with signal_client(backend.bridge_url, CLIENT, ADMIN_KEY, None, executor) as (desk, link):
        await wait_until(lambda: link.state.connected, 30, "the link")
        body = signal_body(CLIENT, "short", valid_until_ms=now_ms() + 1_500)
        assert (await post(gw, SERVICE_KEY, body)).status_code == 201

        async def expired() -> bool:
            doc = (await get(gw, SERVICE_KEY, "/api/v1/signals/short")).json()
            return bool(doc["state"] == "expired" and doc["outcome"] is not None)

        await ask_until(expired, what="the expiry reported", timeout=20)
        doc = (await get(gw, SERVICE_KEY, "/api/v1/signals/short")).json()
        assert "expired while waiting for the trader" in doc["outcome"]["reason"]
        assert "is expired" in desk.accept("short")
        assert executor.intents == []


async def test_an_old_client_without_the_feature_gets_no_signal(
    backend: ReferenceBackend,
) -> None:
    """A hello without ``features`` (every client before this one) is answered without
    it, and the bridge sends such a connection ticks' acks only."""
    from app.protocol.codec import Hello, Welcome, encode  # noqa: PLC0415
    from tests.server.conftest import new_session, open_ws, recv_msg  # noqa: PLC0415

    assert (
        await post(backend.gateway_url, SERVICE_KEY, signal_body(CLIENT, "s"))
    ).status_code == 201
    async with open_ws(backend.bridge_url) as ws:
        await ws.send(encode(Hello(CLIENT, new_session(), 0, credential=ADMIN_KEY)))
        welcome = await recv_msg(ws)
        assert isinstance(welcome, Welcome)
        assert welcome.features == []
        with pytest.raises(TimeoutError):
            await recv_msg(ws, timeout=1.0)
    assert backend.signals.get("s").received_at_ms is None  # type: ignore[union-attr]
