"""A spool that cannot take more — full, or its disk full — pauses intake and loses nothing.

The ticks then wait in the terminal's history (the collector stops taking batches, the
pool's hand-off fills, the workers block), and once the bridge is back everything is
delivered: the stored stream equals the terminal's history, once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.runtime import Runtime
from app.security.secret import Secret
from tests.conftest import small_filesystem, wait_until
from tests.integration.test_delivery import (
    Ports,
    assert_stored_equals_history,
    link_of,
    now_msc,
)
from tests.server.conftest import ADMIN_KEY

pytestmark = pytest.mark.slow

RATES = {"EURUSD": 3_000.0, "XAUUSD": 2_000.0}


async def wait_for_capture_to_stop(rt: Runtime, quiet_s: float = 1.0) -> int:
    """Until the collector's total has not moved for ``quiet_s`` (back-pressure holds)."""
    last, since = rt.collector.stats.ticks_total, time.monotonic()

    def still() -> bool:
        nonlocal last, since
        now_total = rt.collector.stats.ticks_total
        if now_total != last:
            last, since = now_total, time.monotonic()
        return time.monotonic() - since >= quiet_s

    await wait_until(still, 60, "capture to stop taking batches")
    return last


async def test_a_full_spool_pauses_intake_back_pressures_the_pool_and_loses_nothing(
    tmp_path: Path,
) -> None:
    ports = Ports()
    db = tmp_path / "bridge.sqlite"
    # 1 MB of disk spool: about 17,000 ticks, a few seconds at 5,000 ticks/s.
    config = ports.config(tmp_path, RATES, spool_memory_mb=1, spool_disk_mb=1)
    start = now_msc()
    rt = Runtime(config, start_msc=start, credential=Secret(ADMIN_KEY))
    await rt.start()
    stopped = False
    try:
        link = link_of(rt)
        await wait_until(lambda: link.state.intake_paused, 60, "the spool to fill")
        held = await wait_for_capture_to_stop(rt)
        assert link.state.spool_fill >= 0.9
        assert link.state.backlog_ticks == held  # every captured tick waits in the spool
        assert all(w.state == "streaming" for w in rt.pool.health())  # blocked, not failed
        async with ports.backend(db):
            await wait_until(lambda: rt.collector.stats.ticks_total > held + 20_000, 60, "more")
            assert not link.state.intake_paused
            await rt.stop()
            stopped = True
    finally:
        if not stopped:
            await rt.stop()
    assert link.state.backlog_ticks == 0
    total = assert_stored_equals_history(db, RATES, start, link.state.session)
    assert total == rt.collector.stats.ticks_total


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: the spool's disk fills long before its own limit."""
    with small_filesystem(tmp_path, "1m") as mnt:
        yield mnt


async def test_a_full_disk_under_the_spool_pauses_alerts_and_resumes_losing_nothing(
    tmp_path: Path, small_disk: Path
) -> None:
    ports = Ports()
    db = tmp_path / "bridge.sqlite"
    config = ports.config(tmp_path, RATES, spool_memory_mb=1, spool_disk_mb=100)
    config = config.model_copy(
        update={"backend": config.backend.model_copy(update={"spool_dir": small_disk})}
    )
    start = now_msc()
    rt = Runtime(config, start_msc=start, credential=Secret(ADMIN_KEY))
    await rt.start()
    stopped = False
    try:
        link = link_of(rt)
        await wait_until(lambda: bool(link.state.spool_disk_error), 60, "the disk to fill")
        error = link.state.spool_disk_error
        assert str(small_disk) in error
        assert "bytes free" in error
        assert "No space left" in error
        held = await wait_for_capture_to_stop(rt)
        assert link.state.intake_paused
        assert link.state.backlog_ticks == held
        monitor = rt.monitor
        assert monitor is not None
        await wait_until(
            lambda: any(a.rule == "spool_write_failed" for a in monitor.alerts.active()),
            30,
            "the spool alert",
        )
        async with ports.backend(db):
            await wait_until(lambda: rt.collector.stats.ticks_total > held + 20_000, 60, "more")
            await wait_until(lambda: not link.state.spool_disk_error, 30, "the disk error to clear")
            await rt.stop()
            stopped = True
    finally:
        if not stopped:
            await rt.stop()
    assert link.state.backlog_ticks == 0
    total = assert_stored_equals_history(db, RATES, start, link.state.session)
    assert total == rt.collector.stats.ticks_total
