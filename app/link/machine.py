"""The bridge link's rules, with no I/O: numbering, cutting, window, acks, resume, room.

Sans-I/O, like python-websockets' protocol objects: :class:`LinkMachine` is fed events
(a batch offered, a welcome, an ack, a refusal, a disconnect, the clock) and answers with
frames to send and decisions (cut now? pause intake?). The asyncio adapter
(:mod:`app.link.link`) only moves bytes and runs timers, so every rule here is tested
without sockets, with hypothesis driving reconnects at any point, duplicated and
reordered acks, a full spool and a failing disk (tests/link/test_machine.py).

**Frames are bounded by construction.** A message is cut so that its encoded frame never
exceeds the frame limit in force (the bridge announces it in ``welcome``; before the first
welcome the protocol default) nor ``batch_max_ticks``; a batch larger than that is split.
Pending data is cut while the send window is full too (into the spool, not into one
growing message). When a welcome announces a limit smaller than messages already spooled
(a bridge restarted with another setting), the unsent tail is re-cut and renumbered from
the bridge's ``last_seq + 1`` — safe, since the welcome says nothing after it is stored.

**A refused message is never resent unchanged.** A refusal (an ``error`` from the bridge
or a close 1008/1009) concerns the first message the bridge has not stored, which the
next welcome names: ``last_seq + 1``. If that message is too large for the new limit it is
re-cut (changed); if the same message is refused a second time the machine halts: it
sends nothing more and says why (``halted``), instead of looping on it forever.

**Nothing is dropped.** A message that the spool cannot take (full, or the disk failing)
stays pending and intake pauses (:attr:`room` false) until acks make room or the disk
recovers; the ticks then wait in the terminal's history. A damaged spool record is sent
as a ``lost`` marker so the bridge counts it and delivery of the rest goes on.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from app.link.spool import Spool
from app.link.spool_errors import SpoolCorruptError, SpoolDiskError, SpoolFull
from app.protocol import codec
from app.ticks import TickBatch

log = logging.getLogger(__name__)

#: Intake pauses above this spool fill ratio and resumes below ``RESUME_FILL``.
PAUSE_FILL = 0.9
RESUME_FILL = 0.7


class Marker(Protocol):
    """Gives each spooled message its ``marks``: where the capture stands once it is in.

    ``prepare`` computes the marks after the given live and history (backfill) batches
    (not committing), and
    ``commit`` makes them current once the spool took the message.
    """

    def prepare(self, live: Sequence[TickBatch], history: Sequence[TickBatch]) -> bytes: ...

    def commit(self) -> None: ...


@dataclass(slots=True)
class _Pending:
    batch: TickBatch
    history: bool
    captured_at: float


@dataclass(slots=True)
class _Meta:
    """What the monitor wants of an acked message (kept for this run's messages only)."""

    captured_at: float
    ticks: int
    times: npt.NDArray[np.int64] | None


@dataclass(frozen=True, slots=True)
class Acked:
    """One acked message, for the latency sink."""

    seq: int
    captured_at: float
    ticks: int
    times: npt.NDArray[np.int64] | None


@dataclass(slots=True)
class MachineOptions:
    batch_max_ticks: int = 5_000
    #: Messages sent but not acked, at most.
    window: int = 64
    #: Keep the ticks' times per message for a latency sink.
    keep_times: bool = False
    #: While connected, intake pauses above this many unacknowledged ticks (and resumes
    #: at half). Without it, a capture faster than delivery takes all the CPU, the
    #: backlog grows in memory and delivery collapses (measured: 39k ticks/s acked of
    #: 2M/s offered); with it the pool is held back and the link runs at its capacity.
    #: While disconnected only the spool's size limits intake: it absorbs the outage.
    backlog_ticks: int = 500_000
    #: Messages in flight below which a batch is sent at once (see ``idle``).
    eager_in_flight: int = 4


@dataclass(slots=True)
class _Counters:
    ticks_acked: int = 0
    largest_frame: int = 0
    lost_messages: int = 0
    recut_messages: int = 0
    refusals: dict[int, int] = field(default_factory=dict)


class LinkMachine:
    """The link's state; one per session (``spool.session``)."""

    def __init__(
        self,
        spool: Spool,
        options: MachineOptions | None = None,
        *,
        marker: Marker | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.spool = spool
        self.options = options or MachineOptions()
        self._marker = marker
        self._pending: deque[_Pending] = deque()
        self._pending_ticks = 0
        self._pending_since: float | None = None
        self._meta: dict[int, _Meta] = {}
        self._connected = False
        self._sent = spool.acked_seq  # highest seq handed out on this connection
        self._frame_limit = codec.DEFAULT_MAX_FRAME_BYTES
        self._refused = False
        self._blocked = False
        self._counters = _Counters()
        #: Largest frame in the spool: an earlier run's are unknown until looked at.
        self._largest_cut = 2**62 if len(spool) else 0
        self.room = True
        #: Why intake is paused by the spool's disk ("" when it is not).
        self.disk_error = ""
        #: Why the machine stopped sending ("" while it sends).
        self.halted = ""

    # ------------------------------------------------------------------ observation
    @property
    def next_seq(self) -> int:
        return self.spool.last_seq + 1

    @property
    def acked(self) -> int:
        return self.spool.acked_seq

    @property
    def sent(self) -> int:
        return self._sent

    @property
    def pending_ticks(self) -> int:
        return self._pending_ticks

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    @property
    def frame_limit(self) -> int:
        return self._frame_limit

    @property
    def largest_frame(self) -> int:
        return self._counters.largest_frame

    @property
    def ticks_acked(self) -> int:
        return self._counters.ticks_acked

    @property
    def lost_messages(self) -> int:
        return self._counters.lost_messages

    @property
    def recut_messages(self) -> int:
        return self._counters.recut_messages

    @property
    def idle(self) -> bool:
        """Connected with room for an eager message: a batch offered now goes at once.

        Like Nagle's algorithm, but with a few messages allowed in flight before batches
        gather: with one, every batch arriving during a round trip (≈1.5 ms to a bridge
        that commits to SQLite) waited for its ack, which put a round trip into the
        tick→ack p99 at 10k ticks/s. At high rates the window fills anyway and batches
        are cut by size or linger.
        """
        in_flight = self.spool.last_seq - self.acked
        return self._connected and in_flight < self.options.eager_in_flight

    @property
    def can_send(self) -> bool:
        """Whether :meth:`next_frame` would give a frame now (a message waits and the
        window has room)."""
        return (
            self._connected
            and not self.halted
            and self._sent < self.spool.last_seq
            and self._sent - self.acked < self.options.window
        )

    def all_acked(self) -> bool:
        return not self._pending and self.acked == self.spool.last_seq

    # ------------------------------------------------------------------ intake
    def offer(self, batch: TickBatch, *, history: bool = False, now: float = 0.0) -> bool:
        """Queue a batch; True when the caller should :meth:`cut` now (size or idle)."""
        if not len(batch):
            return False
        if not self._pending:
            self._pending_since = now
        self._pending.append(_Pending(batch, history, batch.captured_at or now))
        self._pending_ticks += len(batch)
        return self.idle or self._pending_ticks >= self.options.batch_max_ticks

    def linger_started(self) -> float | None:
        """When the oldest pending batch arrived (the adapter's linger timer runs from it)."""
        return self._pending_since if self._pending else None

    def cut(self) -> int:
        """Turn pending batches into numbered messages in the spool; returns how many.

        Stops at the first message the spool cannot take, keeping it (and the rest)
        pending, and pauses intake: nothing is dropped.
        """
        made = 0
        while self._pending:
            pieces = self._take_message()
            marks = b""
            if self._marker is not None:
                marks = self._marker.prepare(
                    [p.batch for p in pieces if not p.history],
                    [p.batch for p in pieces if p.history],
                )
            seq = self.next_seq
            payload = codec.encode_ticks(seq, [p.batch for p in pieces])
            ticks = sum(len(p.batch) for p in pieces)
            try:
                self.spool.append(seq, payload, ticks, marks)
                self._largest_cut = max(self._largest_cut, len(payload))
            except SpoolFull as exc:
                self._pending.extendleft(reversed(pieces))
                self._pending_ticks += ticks
                self._pause(exc)
                break
            if self._marker is not None:
                self._marker.commit()
            self._blocked = False
            if self.disk_error:
                log.info("spool writable again: intake resumes")
                self.disk_error = ""
            times = None
            if self.options.keep_times:
                times = np.concatenate([p.batch.ticks["time_msc"] for p in pieces])
            self._meta[seq] = _Meta(min(p.captured_at for p in pieces), ticks, times)
            made += 1
        if not self._pending:
            self._pending_since = None
        self._update_room()
        return made

    def _take_message(self) -> list[_Pending]:
        """Pop the pieces of the next message: within the frame limit, batch_max_ticks and
        the protocol's blocks and symbols per message."""
        budget = self._frame_limit - codec.FRAME_OVERHEAD
        tick_room = self.options.batch_max_ticks
        pieces: list[_Pending] = []
        symbols: set[str] = set()
        while self._pending and tick_room > 0 and len(pieces) < codec.MAX_BLOCKS_PER_MESSAGE:
            head = self._pending[0]
            if head.batch.symbol not in symbols:
                if len(symbols) >= codec.MAX_SYMBOLS_PER_MESSAGE:
                    break  # the bridge's limits: the next message takes the rest
                symbols.add(head.batch.symbol)
            fit = min(
                codec.max_ticks_per_block(head.batch.symbol, budget), tick_room, len(head.batch)
            )
            if fit <= 0:
                break
            if fit == len(head.batch):
                self._pending.popleft()
                piece = head
            else:
                piece = _Pending(_slice(head.batch, 0, fit), head.history, head.captured_at)
                head.batch = _slice(head.batch, fit, len(head.batch))
            pieces.append(piece)
            self._pending_ticks -= fit
            budget -= codec.block_bytes(piece.batch.symbol, fit)
            tick_room -= fit
        if not pieces:  # pragma: no cover - the limit is at least MIN_MAX_FRAME_BYTES
            raise AssertionError(f"frame limit {self._frame_limit} cannot hold one tick")
        return pieces

    def _pause(self, exc: SpoolFull) -> None:
        if isinstance(exc, SpoolDiskError):
            if str(exc) != self.disk_error:
                log.error("%s: intake paused; ticks wait in the terminal", exc)
            self.disk_error = str(exc)
        self._blocked = True

    def _update_room(self) -> None:
        fill = self.spool.fill_ratio
        backlog = self.spool.ticks + self._pending_ticks
        limit = self.options.backlog_ticks
        behind = self._connected and backlog > limit
        if self.disk_error or self._blocked or fill >= PAUSE_FILL or behind:
            if self.room:
                if behind:
                    log.info("link %d ticks behind: holding capture back", backlog)
                else:
                    log.warning("spool %.0f %% full or failing: pausing intake", fill * 100)
            self.room = False
        elif (
            not self.room and fill <= RESUME_FILL and not (self._connected and backlog > limit // 2)
        ):
            log.info("intake resumed (spool %.0f %% full, %d ticks behind)", fill * 100, backlog)
            self.room = True

    @property
    def blocked(self) -> bool:
        """The spool refused the last message: retry :meth:`cut` after acks or a pause."""
        return self._blocked

    # ------------------------------------------------------------------ connection
    def hello(
        self, client_id: str, credential: str | None = None, features: Sequence[str] = ()
    ) -> bytes:
        return codec.encode(
            codec.Hello(
                client_id,
                self.spool.session,
                self.acked,
                credential=credential,
                features=list(features),
            )
        )

    def on_welcome(self, welcome: codec.Welcome) -> None:
        """The bridge says what it stored and its frame limit: resume after it."""
        last = welcome.last_seq
        if welcome.version != codec.PROTOCOL_VERSION:
            raise codec.ProtocolError("bad_version", f"bridge speaks version {welcome.version}")
        if last > self.spool.last_seq:
            raise codec.ProtocolError(
                "bad_ack",
                f"bridge stored seq {last}, but only {self.spool.last_seq} exist",
            )
        if welcome.max_frame_bytes < codec.MIN_MAX_FRAME_BYTES:
            raise codec.ProtocolError(
                "bad_message", f"bridge frame limit {welcome.max_frame_bytes} is below the minimum"
            )
        self._apply_ack(last)
        self._frame_limit = welcome.max_frame_bytes
        self._recut_oversize()
        if self._refused:
            self._refused = False
            culprit = self.acked + 1
            if culprit <= self.spool.last_seq:
                count = self._counters.refusals.get(culprit, 0) + 1
                self._counters.refusals = {culprit: count}
                if count >= 2:
                    self.halted = (
                        f"the bridge refused message {culprit} twice; delivery stopped "
                        "(see the log for the bridge's reason)"
                    )
                    log.error("bridge link halted: %s", self.halted)
        self._connected = True
        self._sent = self.acked
        self._update_room()

    def _recut_oversize(self) -> None:
        """Re-cut the unacked tail when any of it exceeds the frame limit now in force."""
        if self._largest_cut <= self._frame_limit:
            return  # nothing spooled can be too large: no need to read the spool back
        spool = self.spool
        oversize = False
        seq = self.acked
        frames: list[tuple[int, bytes]] = []
        while (item := self._peek(seq)) is not None:
            seq, payload = item
            frames.append(item)
            oversize = oversize or len(payload) > self._frame_limit
        self._largest_cut = max((len(p) for _, p in frames), default=0)
        if not oversize:
            return
        batches: list[TickBatch] = []
        for _, payload in frames:
            message = codec.decode_client(payload)
            if isinstance(message, codec.Ticks):
                batches.extend(codec.ticks_batches(message))
        marks = spool.marks
        pending, pending_ticks = self._pending, self._pending_ticks
        self._pending, self._pending_ticks = deque(_Pending(b, True, 0.0) for b in batches), 0
        items: list[tuple[bytes, int, bytes]] = []
        next_seq = self.acked + 1
        while self._pending:
            pieces = self._take_message()
            items.append(
                (
                    codec.encode_ticks(next_seq, [p.batch for p in pieces]),
                    sum(len(p.batch) for p in pieces),
                    b"",
                )
            )
            next_seq += 1
        if items:  # the newest record keeps the marks: the capture position is unchanged
            payload, ticks, _ = items[-1]
            items[-1] = (payload, ticks, marks)
        self._pending, self._pending_ticks = pending, pending_ticks
        log.warning(
            "bridge frame limit is %d bytes: re-cut %d unsent messages into %d",
            self._frame_limit,
            len(frames),
            len(items),
        )
        spool.replace_after(self.acked, items)
        self._largest_cut = max((len(p) for p, _, _ in items), default=0)
        self._counters.recut_messages += len(items)
        for s in range(self.acked + 1, self.acked + len(frames) + 1):
            self._meta.pop(s, None)

    def _peek(self, after: int) -> tuple[int, bytes] | None:
        try:
            return self.spool.peek_next_after(after)
        except SpoolCorruptError as exc:
            return exc.seq, codec.encode(codec.Lost(exc.seq, exc.ticks or 0, str(exc)[:200]))

    def next_frame(self) -> bytes | None:
        """The next frame to send on this connection, or None (window full, nothing
        left, or halted)."""
        if not self._connected or self.halted:
            return None
        if self._sent - self.acked >= self.options.window:
            return None
        try:
            item = self.spool.peek_next_after(self._sent)
        except SpoolCorruptError as exc:
            self._counters.lost_messages += 1
            log.error("%s: sent to the bridge as lost (%d ticks)", exc, exc.ticks or 0)
            item = (exc.seq, codec.encode(codec.Lost(exc.seq, exc.ticks or 0, "damaged record")))
        if item is None:
            return None
        seq, frame = item
        self._sent = seq
        self._counters.largest_frame = max(self._counters.largest_frame, len(frame))
        return frame

    def on_ack(self, seq: int) -> list[Acked]:
        """A cumulative ack; returns the messages it newly covers."""
        if seq > self._sent and seq > self.acked:
            raise codec.ProtocolError(
                "bad_ack", f"bridge acked seq {seq}, but only {self._sent} were sent"
            )
        return self._apply_ack(seq)

    def _apply_ack(self, seq: int) -> list[Acked]:
        if seq <= self.acked:
            return []
        out = []
        for s in range(self.acked + 1, seq + 1):
            meta = self._meta.pop(s, None)
            if meta is not None:  # None: a message of an earlier run, or re-cut
                out.append(Acked(s, meta.captured_at, meta.ticks, meta.times))
        before = self.spool.ticks
        self.spool.ack(seq)
        self._counters.ticks_acked += before - self.spool.ticks
        self._counters.refusals.pop(seq, None)
        self._update_room()
        return out

    def on_refused(self) -> None:
        """The bridge refused a message (error frame or close 1008/1009)."""
        self._refused = True

    def on_disconnect(self) -> None:
        self._connected = False
        self._sent = self.acked
        self._update_room()


def _slice(batch: TickBatch, start: int, stop: int) -> TickBatch:
    return TickBatch(batch.symbol, batch.ticks[start:stop], batch.worker_id, batch.captured_at)
