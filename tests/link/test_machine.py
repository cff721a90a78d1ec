"""The link's rules without sockets: every tick arrives once, frames stay within the limit.

A model bridge (stores ``seq == last + 1``, ignores duplicates, refuses gaps) talks to
:class:`LinkMachine` through frames only; hypothesis drives offers, cuts, sends, acks
that come late or twice, disconnects at any point and bridges that restart with another
frame limit. Whatever happens, once the link is let to finish, the bridge holds exactly
the offered ticks, per symbol, in order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.link.machine import LinkMachine, MachineOptions
from app.link.positions import SpooledPositions, decode_marks
from app.link.spool import Spool
from app.protocol import codec
from app.ticks import TICK_DTYPE, TickArray, TickBatch

SYMBOLS = ("EURUSD", "XAUUSD", "A_VERY_LONG_SYMBOL_NAME.pro")


def make_ticks(start_msc: int, n: int) -> TickArray:
    t = np.zeros(n, dtype=TICK_DTYPE)
    t["time_msc"] = start_msc + np.arange(n) // 2  # two ticks share each millisecond
    t["time"] = t["time_msc"] // 1000
    t["bid"] = 1.0 + np.arange(n) * 1e-5
    t["ask"] = t["bid"] + 1e-4
    t["flags"] = 6
    return t


class Source:
    """Consecutive batches per symbol, remembered for the final comparison."""

    def __init__(self) -> None:
        self.next_msc = dict.fromkeys(SYMBOLS, 1_700_000_000_000)
        self.offered: dict[str, list[TickArray]] = defaultdict(list)

    def batch(self, symbol: str, n: int) -> TickBatch:
        ticks = make_ticks(self.next_msc[symbol], n)
        self.next_msc[symbol] = int(ticks["time_msc"][-1]) + 1
        self.offered[symbol].append(ticks)
        return TickBatch(symbol, ticks, 1, 1.0)


@dataclass
class ModelBridge:
    """The bridge's exactly-once rules, as docs/protocol.md states them."""

    limit: int = codec.DEFAULT_MAX_FRAME_BYTES
    last: int = 0
    stored: dict[str, list[TickArray]] = field(default_factory=lambda: defaultdict(list))
    lost: int = 0
    unacked: list[int] = field(default_factory=list)

    def welcome(self) -> codec.Welcome:
        self.unacked.clear()
        return codec.Welcome(self.last, self.limit)

    def receive(self, frame: bytes) -> bool:
        """False when the bridge refuses the frame (and the connection closes)."""
        if len(frame) > self.limit:
            return False
        message = codec.decode_client(frame)
        assert isinstance(message, codec.Ticks | codec.Lost)
        if message.seq <= self.last:
            self.unacked.append(self.last)
            return True
        if message.seq != self.last + 1:
            return False
        if isinstance(message, codec.Lost):
            self.lost += 1
        else:
            for batch in codec.ticks_batches(message):
                self.stored[batch.symbol].append(batch.ticks)
        self.last = message.seq
        self.unacked.append(self.last)
        return True


def concat(parts: list[TickArray]) -> TickArray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=TICK_DTYPE)


def finish(machine: LinkMachine, bridge: ModelBridge) -> None:
    """Connect and let everything through, acking each frame."""
    machine.on_disconnect()
    machine.on_welcome(bridge.welcome())
    machine.cut()
    for _ in range(100_000):
        frame = machine.next_frame()
        if frame is None:
            if machine.all_acked():
                return
            machine.cut()
            continue
        assert bridge.receive(frame)
        machine.on_ack(bridge.unacked.pop())
    raise AssertionError("the link did not finish")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_interleaving_delivers_every_tick_exactly_once(data: st.DataObject) -> None:
    source = Source()
    spool = Spool(4 * 2**20, 0, None, session="s")
    machine = LinkMachine(spool, MachineOptions(batch_max_ticks=data.draw(st.integers(1, 700))))
    bridge = ModelBridge()
    connected = False
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        op = data.draw(
            st.sampled_from(["offer", "offer", "cut", "connect", "send", "ack", "drop", "restart"])
        )
        if op == "offer":
            sym = data.draw(st.sampled_from(SYMBOLS))
            if machine.offer(source.batch(sym, data.draw(st.integers(1, 900)))):
                machine.cut()
        elif op == "cut":
            machine.cut()
        elif op == "connect" and not connected:
            machine.on_welcome(bridge.welcome())
            connected = True
        elif op == "send" and connected:
            frame = machine.next_frame()
            if frame is not None:
                assert len(frame) <= bridge.limit
                if not bridge.receive(frame):
                    machine.on_refused()
                    machine.on_disconnect()
                    connected = False
        elif op == "ack" and connected and bridge.unacked:
            # Acks come late, out of order or twice; they are cumulative.
            idx = data.draw(st.integers(0, len(bridge.unacked) - 1))
            machine.on_ack(bridge.unacked.pop(idx))
        elif op == "drop":
            machine.on_disconnect()
            connected = False
        elif op == "restart":
            # The bridge restarts with another frame limit (and loses nothing it acked).
            bridge.limit = data.draw(st.sampled_from([4096, 65_536, codec.DEFAULT_MAX_FRAME_BYTES]))
            machine.on_disconnect()
            connected = False
    assert not machine.halted
    finish(machine, bridge)
    for sym in SYMBOLS:
        assert np.array_equal(concat(bridge.stored[sym]), concat(source.offered[sym])), sym
    assert spool.ticks == 0
    assert len(spool) == 0


def test_a_two_million_tick_batch_goes_in_frames_within_a_64_kb_limit() -> None:
    source = Source()
    spool = Spool(512 * 2**20, 0, None, session="s")
    machine = LinkMachine(spool, MachineOptions(batch_max_ticks=200_000))
    bridge = ModelBridge(limit=65_536)
    machine.on_welcome(bridge.welcome())
    machine.offer(source.batch("EURUSD", 2_000_000))
    machine.cut()
    sizes = []
    while (frame := machine.next_frame()) is not None or not machine.all_acked():
        if frame is None:
            continue
        sizes.append(len(frame))
        assert bridge.receive(frame)
        machine.on_ack(bridge.unacked.pop())
    assert max(sizes) <= 65_536
    assert machine.largest_frame == max(sizes)
    assert np.array_equal(concat(bridge.stored["EURUSD"]), concat(source.offered["EURUSD"]))


def test_spooled_messages_are_re_cut_when_the_bridge_announces_a_smaller_limit() -> None:
    source = Source()
    spool = Spool(64 * 2**20, 0, None, session="s")
    machine = LinkMachine(spool, MachineOptions(batch_max_ticks=50_000))
    for sym in SYMBOLS:
        machine.offer(source.batch(sym, 40_000))
    machine.cut()  # before any welcome: cut for the default limit (2.4 MB messages)
    assert len(spool) == 3
    bridge = ModelBridge(limit=65_536)
    finish(machine, bridge)
    assert machine.largest_frame <= 65_536
    assert machine.recut_messages > 3
    for sym in SYMBOLS:
        assert np.array_equal(concat(bridge.stored[sym]), concat(source.offered[sym]))


def test_a_message_refused_twice_halts_instead_of_looping() -> None:
    source = Source()
    spool = Spool(2**20, 0, None, session="s")
    machine = LinkMachine(spool)
    bridge = ModelBridge()
    machine.on_welcome(bridge.welcome())
    machine.offer(source.batch("EURUSD", 10))
    machine.cut()
    for attempt in (1, 2):
        assert machine.next_frame() is not None  # the bridge refuses it (say, bad_message)
        machine.on_refused()
        machine.on_disconnect()
        machine.on_welcome(bridge.welcome())
        assert bool(machine.halted) is (attempt == 2)
    assert "refused message 1 twice" in machine.halted
    assert machine.next_frame() is None


def test_a_full_spool_pauses_intake_keeps_the_ticks_and_resumes_after_acks() -> None:
    source = Source()
    one_message = codec.ticks_frame_bytes(1, 1, codec.block_bytes("EURUSD", 1_000))
    spool = Spool(3 * one_message, 0, None, session="s")
    machine = LinkMachine(spool, MachineOptions(batch_max_ticks=1_000))
    for _ in range(5):
        machine.offer(source.batch("EURUSD", 1_000))
    machine.cut()
    assert len(spool) == 3
    assert machine.blocked
    assert not machine.room
    assert machine.pending_ticks == 2_000
    bridge = ModelBridge()
    finish(machine, bridge)
    assert machine.room
    assert np.array_equal(concat(bridge.stored["EURUSD"]), concat(source.offered["EURUSD"]))


def test_marks_say_where_the_spooled_capture_ends_history_excluded() -> None:
    source = Source()
    spool = Spool(2**20, 0, None, session="s")
    begin = {"EURUSD": (1_700_000_000_000, 0)}
    positions = SpooledPositions(begin)
    machine = LinkMachine(spool, marker=positions)
    live = source.batch("EURUSD", 7)  # times 0,0,1,1,2,2,3 ms after the start
    machine.offer(live)
    machine.offer(TickBatch("EURUSD", make_ticks(1_600_000_000_000, 3)), history=True)
    machine.cut()
    spans = decode_marks(spool.marks)
    assert spans["EURUSD"].begin == (1_700_000_000_000, 0)
    assert spans["EURUSD"].end == (1_700_000_000_003, 1)
    assert positions.positions()["EURUSD"] == (1_700_000_000_003, 1)


@pytest.mark.parametrize("limit", [codec.MIN_MAX_FRAME_BYTES, 65_536, 2**20])
def test_cut_messages_fill_but_never_exceed_the_limit(limit: int) -> None:
    source = Source()
    spool = Spool(64 * 2**20, 0, None, session="s")
    machine = LinkMachine(spool, MachineOptions(batch_max_ticks=10**6))
    machine.on_welcome(codec.Welcome(0, limit))
    for sym in SYMBOLS * 3:
        machine.offer(source.batch(sym, 5_000))
    machine.cut()
    sizes = []
    while (frame := machine.next_frame()) is not None:
        sizes.append(len(frame))
        machine.on_ack(machine.sent)
    assert max(sizes) <= limit
    assert sum(sizes[:-1]) / len(sizes[:-1]) > 0.9 * limit  # not needlessly small


def test_a_connected_link_that_falls_behind_holds_capture_back_until_half_caught_up() -> None:
    source = Source()
    spool = Spool(64 * 2**20, 0, None, session="s")
    machine = LinkMachine(spool, MachineOptions(batch_max_ticks=1_000, backlog_ticks=10_000))
    bridge = ModelBridge()
    for _ in range(15):  # an outage: the spool absorbs it, intake stays open
        machine.offer(source.batch("EURUSD", 1_000))
        machine.cut()
    assert machine.room
    machine.on_welcome(bridge.welcome())  # back, 15,000 ticks behind
    assert not machine.room
    while machine.spool.ticks > 5_000:
        frame = machine.next_frame()
        assert frame is not None
        assert bridge.receive(frame)
        machine.on_ack(bridge.unacked.pop())
        assert machine.room is (machine.spool.ticks <= 5_000)
    machine.on_disconnect()
    assert machine.room
