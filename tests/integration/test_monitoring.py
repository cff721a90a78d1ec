"""The monitor inside a real run: a stopped bridge raises "link down", its return
resolves it; TPS, latency and worker usage are measured from the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ClientConfig
from app.monitor.alerts import AlertEvent, EventKind
from app.runtime import Runtime
from app.security.secret import Secret
from tests.conftest import wait_until
from tests.integration.test_delivery import Ports
from tests.server.conftest import ADMIN_KEY

pytestmark = pytest.mark.slow


async def test_bridge_outage_raises_link_down_and_its_return_resolves_it(tmp_path: Path) -> None:
    ports = Ports()
    base = ports.config(tmp_path, {"EURUSD": 500.0, "GBPUSD": 500.0})
    config = ClientConfig.model_validate(
        {**base.model_dump(mode="json"), "monitor": {"interval_s": 0.2}}
    )
    events: list[AlertEvent] = []
    backend = ports.backend(tmp_path / "b.sqlite")
    await backend.start()
    rt = Runtime(config, credential=Secret(ADMIN_KEY))
    assert rt.monitor is not None
    monitor = rt.monitor
    monitor.alerts.subscribe(events.append)
    await rt.start()
    try:
        await wait_until(lambda: (monitor.metrics.get("tps.total") or 0) > 500, 60, "measured TPS")
        assert monitor.metrics["link.down"] is False
        assert monitor.latency["tick_to_collector"].count > 0
        await wait_until(lambda: monitor.latency["collector_to_ack"].count > 0, 30, "ack latencies")
        # Worker processes are sampled with psutil: RSS of a real numpy process.
        await wait_until(
            lambda: all(
                (monitor.metrics.get(f"worker.{w}.rss_bytes") or 0) > 20 * 2**20 for w in (1, 2)
            ),
            30,
            "worker usage samples",
        )
        await backend.stop()
        await wait_until(
            lambda: any(e.kind is EventKind.RAISED and e.alert.rule == "link_down" for e in events),
            30,
            "the link_down alert",
        )
        raised = next(e for e in events if e.alert.rule == "link_down")
        assert raised.alert.severity.value == "critical"
        assert "down for 3 s" in raised.alert.message
        assert [a.rule for a in monitor.alerts.active()] == ["link_down"]
        backend = ports.backend(tmp_path / "b.sqlite")
        await backend.start()
        await wait_until(
            lambda: any(
                e.kind is EventKind.RESOLVED and e.alert.rule == "link_down" for e in events
            ),
            60,
            "the alert to resolve",
        )
        assert monitor.alerts.active() == []
    finally:
        await rt.stop()
        await backend.stop()
    summary = monitor.summary()
    assert summary["ticks_total"] == rt.collector.stats.ticks_total
    assert summary["latency"]["tick_to_collector"]["p99_ms"] > 0
    assert [a["event"] for a in summary["alerts"] if a["id"] == "link_down"] == [
        "resolved",
        "raised",
    ]
