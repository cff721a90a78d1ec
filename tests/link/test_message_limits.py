"""The link cuts its messages within the bridge's blocks- and symbols-per-message limits,
so an honest client is never refused ``too_many_blocks`` / ``too_many_symbols``."""

from __future__ import annotations

import numpy as np

from app.link.machine import LinkMachine, MachineOptions
from app.link.spool import Spool
from app.protocol import codec
from app.ticks import TICK_DTYPE, TickBatch


def test_many_small_batches_and_many_symbols_are_cut_within_the_limits() -> None:
    spool = Spool(256 * 2**20, 0, None, session="s")
    machine = LinkMachine(spool, MachineOptions(batch_max_ticks=1_000_000))
    machine.on_welcome(codec.Welcome(0))
    n = codec.MAX_BLOCKS_PER_MESSAGE + 2 * codec.MAX_SYMBOLS_PER_MESSAGE
    offered = 0
    for i in range(n):
        t = np.zeros(1, dtype=TICK_DTYPE)
        t["time_msc"] = 1_700_000_000_000 + i
        t["time"] = t["time_msc"] // 1000
        # The first half one symbol (many blocks), the rest a new symbol each.
        symbol = "EURUSD" if i < codec.MAX_BLOCKS_PER_MESSAGE + 10 else f"S{i}"
        machine.offer(TickBatch(symbol, t))
        offered += 1
    machine.cut()
    received = 0
    while (frame := machine.next_frame()) is not None:
        message = codec.decode_client(frame)  # would raise too_many_blocks
        assert isinstance(message, codec.Ticks)
        batches = codec.ticks_batches(message)  # would raise too_many_symbols
        assert len(batches) <= codec.MAX_BLOCKS_PER_MESSAGE
        assert len({b.symbol for b in batches}) <= codec.MAX_SYMBOLS_PER_MESSAGE
        received += sum(len(b.ticks) for b in batches)
        machine.on_ack(message.seq)
    assert received == offered
