"""One batch of 2M ticks through a bridge that takes 64 KB frames: every frame within the
limit, every tick stored once, in order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from app.collector import SequencedBatch
from app.link.link import BridgeLink
from app.link.spool import Spool
from app.ports import free_ports
from app.security.secret import Secret
from app.server.server import ReferenceBackend
from app.server.store import TickStore
from app.ticks import TICK_DTYPE, TickBatch
from tests.conftest import wait_until
from tests.server.conftest import ADMIN_KEY, KEYS

pytestmark = pytest.mark.slow

LIMIT = 65_536


async def test_a_two_million_tick_batch_through_a_64_kb_bridge(tmp_path: Path) -> None:
    bridge_port, gateway_port, hub_port = free_ports(3)
    db = tmp_path / "bridge.sqlite"
    ticks = np.zeros(2_000_000, dtype=TICK_DTYPE)
    ticks["time_msc"] = 1_700_000_000_000 + np.arange(len(ticks)) // 4
    ticks["time"] = ticks["time_msc"] // 1000
    ticks["bid"] = 1.1 + (np.arange(len(ticks)) % 1000) * 1e-5
    ticks["ask"] = ticks["bid"] + 1e-4
    async with ReferenceBackend(
        bridge_port=bridge_port,
        gateway_port=gateway_port,
        hub_port=hub_port,
        db_path=db,
        max_frame_bytes=LIMIT,
        keys=KEYS,
    ) as backend:
        spool = Spool(256 * 2**20, 0, None, client_id="big", session="s-big")
        link = BridgeLink(backend.bridge_url, "big", spool, credential=Secret(ADMIN_KEY))
        task = asyncio.create_task(link.run())
        try:
            await wait_until(lambda: link.state.connected, 30, "the link")
            assert link.state.max_frame_bytes == LIMIT
            link.offer(SequencedBatch(1, TickBatch("EURUSD", ticks, 1, time.time()), time.time()))
            await wait_until(link.all_acked, 120, "2M ticks acknowledged")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await link.close()
        state = link.state
    assert 0 < state.largest_frame_bytes <= LIMIT
    assert state.ticks_acked == len(ticks)
    assert state.reconnects == 0  # nothing was refused
    with TickStore(db) as store:
        stats = store.stats()
        assert np.array_equal(store.read_ticks(client_id="big", session="s-big"), ticks)
    assert stats["refused_messages"] == 0
    assert stats["duplicate_batches"] == 0
    assert stats["batches_stored"] >= len(ticks) * 60 // LIMIT
