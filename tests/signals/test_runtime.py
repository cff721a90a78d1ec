"""The composition: a Runtime on the embedded default (its own backend process, the
simulated terminal) with an injected executor and ``trading.auto_execute_sources``:
``runtime.signals`` executes the automatic source, keeps the other waiting for
``accept``, and its snapshot says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ClientConfig
from app.ports import free_ports
from app.runtime import Runtime
from app.trading.intent import Outcome
from app.trading.view import SignalState
from tests.conftest import wait_until
from tests.signals.conftest import RecordingExecutor, post, signal_body

pytestmark = pytest.mark.timeout(120)


async def test_runtime_signals_follow_the_settings(tmp_path: Path) -> None:
    bridge, gateway, hub = free_ports(3)
    config = ClientConfig.model_validate(
        {
            "terminals": [
                {"symbols": ["EURUSD"], "rates": {"EURUSD": 50.0}, "market_hours": "always"}
            ],
            "pool": {"size": 1},
            "backend": {
                "bridge_url": f"ws://127.0.0.1:{bridge}/ws",
                "gateway_url": f"http://127.0.0.1:{gateway}",
                "hub_url": f"http://127.0.0.1:{hub}",
                "client_id": "rt-desk",
                "embedded": "always",
                "embedded_db": str(tmp_path / "emb.sqlite"),
                "spool_dir": str(tmp_path / "spool"),
                "demo_signals": False,
            },
            "trading": {"auto_execute_sources": ["auto-src"]},
        }
    )
    executor = RecordingExecutor()
    runtime = Runtime(config, signal_executor=executor, signals_file=tmp_path / "signals.json")
    await runtime.start()
    try:
        assert runtime.signals is not None
        assert runtime.embedded is not None
        await wait_until(lambda: runtime.link is not None and runtime.link.state.connected, 60)
        key = runtime.embedded.credential.reveal()
        gw = runtime.embedded.gateway_url
        assert (
            await post(gw, key, signal_body("rt-desk", "r-auto", "auto-src"))
        ).status_code == 201
        assert (await post(gw, key, signal_body("rt-desk", "r-man", "other"))).status_code == 201
        desk = runtime.signals

        def state(sid: str) -> SignalState | None:
            entry = desk.snapshot().get(sid)
            return entry.state if entry is not None else None

        await wait_until(lambda: state("r-auto") is SignalState.EXECUTED, 30, "auto executed")
        await wait_until(lambda: state("r-man") is SignalState.WAITING, 30, "manual waiting")
        assert [i.signal_id for i in executor.intents] == ["r-auto"]
        report = await desk.accept_signal("r-man")  # the window's TradingIntents call
        assert (report.outcome, report.position) == (Outcome.EXECUTED, 3002)
        assert state("r-man") is SignalState.EXECUTED
        again = await desk.accept_signal("r-man")
        assert again.outcome is Outcome.REFUSED
        assert "is executed" in again.message
        assert [i.signal_id for i in executor.intents] == ["r-auto", "r-man"]
        desk.set_auto_execute("other", True)
        assert (await post(gw, key, signal_body("rt-desk", "r-now", "other"))).status_code == 201
        await wait_until(lambda: state("r-now") is SignalState.EXECUTED, 30, "now automatic")
        rows = {r.id: r for r in desk.snapshot().rows()}
        assert rows["r-now"].auto
        assert (rows["r-man"].ticket, rows["r-man"].state) == (3002, SignalState.EXECUTED)
        entry = desk.snapshot().get("r-auto")
        assert entry is not None
        assert entry.execute_latency_ms is not None
    finally:
        await runtime.stop()
    assert (tmp_path / "signals.json").exists()
