"""Spools that earlier runs left behind are delivered and removed, whatever the settings
are now: the newest is resumed as this run's session, older ones drained on the side."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from app.link.spool import Spool
from app.protocol import codec
from app.runtime import Runtime, spool_root
from app.security.secret import Secret
from app.server.store import TickStore
from app.ticks import TICK_DTYPE, TickArray, TickBatch
from tests.conftest import wait_until
from tests.integration.test_delivery import Ports, link_of
from tests.server.conftest import ADMIN_KEY

pytestmark = pytest.mark.slow


def leftover(root: Path, session: str, n_messages: int, start: int) -> TickArray:
    """A spool folder as a crashed run leaves it (files, no lock), and its ticks."""
    ticks = np.zeros(n_messages * 50, dtype=TICK_DTYPE)
    ticks["time_msc"] = start + np.arange(len(ticks))
    ticks["time"] = ticks["time_msc"] // 1000
    ticks["bid"] = 1.1
    spool = Spool(0, 10**8, root / session, client_id="test-desk", session=session)
    for seq in range(1, n_messages + 1):
        part = ticks[(seq - 1) * 50 : seq * 50]
        spool.append(seq, codec.encode_ticks(seq, [TickBatch("OLD", part)]), 50)
        time.sleep(0.001)  # distinct creation times: "newest" is well defined
    spool._close_files()
    assert spool._lock is not None
    spool._lock.release()
    return ticks


@pytest.mark.parametrize("disk_mb", [64, 0])
async def test_leftover_spools_are_delivered_and_removed(tmp_path: Path, disk_mb: int) -> None:
    ports = Ports()
    config = ports.config(tmp_path, {"EURUSD": 500.0}, spool_disk_mb=disk_mb)
    root = spool_root(config.backend, "test-desk")
    older = leftover(root, "old-1", 7, 1_600_000_000_000)
    newer = leftover(root, "old-2", 5, 1_600_000_100_000)
    db = tmp_path / "bridge.sqlite"
    async with ports.backend(db):
        rt = Runtime(config, credential=Secret(ADMIN_KEY))
        await rt.start()
        try:
            link = link_of(rt)
            if disk_mb:
                assert link.session == "old-2"  # the newest is resumed as this session

            def stored(session: str) -> int:
                with TickStore(db) as store:
                    return len(store.read_ticks(client_id="test-desk", session=session))

            await wait_until(lambda: stored("old-1") >= len(older), 30, "old-1 delivered")
            await wait_until(lambda: stored("old-2") >= len(newer), 30, "old-2 delivered")
            await wait_until(lambda: link.state.ticks_acked > 0, 30, "live ticks delivered")
        finally:
            await rt.stop()
    with TickStore(db) as store:
        got_older = store.read_ticks(client_id="test-desk", session="old-1")
        got_newer = store.read_ticks(client_id="test-desk", session="old-2", symbol="OLD")
    assert np.array_equal(got_older, older)
    assert np.array_equal(got_newer, newer)
    assert not (root / "old-1").exists()
    assert not (root / "old-2").exists()
