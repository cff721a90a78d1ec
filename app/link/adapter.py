"""What every delivery link shares: the asyncio side of :class:`~app.link.machine.LinkMachine`.

The bridge link (:mod:`app.link.link`, a WebSocket) and the NATS sink
(:mod:`app.nats.sink`, JetStream publishes) differ only in how a spooled message leaves
the machine and how its acknowledgement comes back. Everything else — taking the
collector's batches, the linger timer, cutting into the spool, pausing intake
(:attr:`LinkAdapter.room`), cumulative acks feeding the latency sink, draining at stop,
the :class:`LinkState` the UI and the monitor read, and the reconnect loop over
:mod:`app.backoff` — lives here once, so the runtime drives either link the same way.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from app.backoff import Backoff, BackoffPolicy
from app.collector import SequencedBatch
from app.link.machine import LinkMachine, MachineOptions, Marker
from app.link.spool import Spool
from app.protocol import codec

log = logging.getLogger(__name__)

#: Called for every acked message with (ack time, capture time of its oldest batch,
#: the ``time_msc`` of all its ticks), all wall-clock: the monitor and the pipeline
#: benchmark turn these into tick→ack latency distributions.
LatencySink = Callable[[float, float, npt.NDArray[np.int64]], None]

#: Retry a cut the spool refused this often while nothing else wakes the link.
_RETRY_CUT_S = 0.05


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the UI and the monitor show about the link."""

    connected: bool
    url: str
    session: str
    backlog_batches: int
    backlog_ticks: int
    last_sent_seq: int
    last_acked_seq: int
    ticks_acked: int
    reconnects: int
    #: Round trip to the peer, seconds (None before the first measure).
    rtt: float | None
    spool_fill: float
    intake_paused: bool
    last_error: str
    #: The frame limit in force, and the largest frame sent so far.
    max_frame_bytes: int = codec.DEFAULT_MAX_FRAME_BYTES
    largest_frame_bytes: int = 0
    #: Messages recovered from an earlier run's spool, resent in this one.
    resumed_batches: int = 0
    #: Damaged spool records sent as "lost" (their ticks did not reach the peer).
    lost_batches: int = 0
    #: Why the spool's disk cannot take data ("" when it can): intake is paused.
    spool_disk_error: str = ""
    #: The spool's folder ("" for a memory-only spool).
    spool_folder: str = ""
    #: Why the link stopped sending ("" while it sends).
    halted: str = ""


@dataclass(slots=True)
class LinkOptions:
    batch_max_ticks: int = 5_000
    linger: float = 0.002
    #: Messages sent but not yet acked, at most.
    window: int = 64
    compression: bool = False
    ping_interval: float = 5.0
    ping_timeout: float = 5.0
    open_timeout: float = 5.0
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    ssl_context: ssl.SSLContext | None = None


class LinkAdapter:
    """The shared half of a link; a subclass supplies :meth:`_session` (one connection,
    returning or raising when it ends) and says whether it is :attr:`connected`."""

    #: How the logs name this link.
    name = "link"

    def __init__(
        self,
        url: str,
        client_id: str,
        spool: Spool,
        options: LinkOptions | None = None,
        *,
        latency_sink: LatencySink | None = None,
        marker: Marker | None = None,
        intake: bool = True,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.options = options or LinkOptions()
        self.machine = LinkMachine(
            spool,
            MachineOptions(
                self.options.batch_max_ticks,
                self.options.window,
                keep_times=latency_sink is not None,
            ),
            marker=marker,
        )
        self._spool = spool
        self._latency_sink = latency_sink
        self._resumed = len(spool)
        self._linger_handle: asyncio.TimerHandle | None = None
        #: The cut scheduled for the end of this loop turn (see :meth:`offer`).
        self._cut_soon: asyncio.Handle | None = None
        self._work = asyncio.Event()
        #: Set while the collector may hand batches over (intake pauses on a full spool).
        self.room = asyncio.Event()
        self.room.set()
        self._room_held_open = False
        self._room_watchers: list[Callable[[], None]] = []
        #: False for a link that only drains an earlier run's spool.
        self.intake = intake
        self._reconnects = 0
        self._last_error = ""

    @property
    def session(self) -> str:
        return self._spool.session

    @property
    def connected(self) -> bool:
        raise NotImplementedError

    @property
    def rtt(self) -> float | None:
        return None

    # ------------------------------------------------------------ intake (collector side)
    def offer(self, item: SequencedBatch) -> None:
        """Collector callback: queue a batch for the next message. Never blocks.

        A batch that is due at once (the link is idle, or the size is reached) is not
        cut here but at the end of this loop turn (``call_soon``): the collector hands
        over a whole burst of batches in one turn, and they then leave as ONE message
        (one spool write, one send, one ack) instead of one each. At 10k ticks/s in
        batches of ~4 ticks the per-message work was most of the app's CPU. Nothing
        waits for it: the cut runs before the loop polls for I/O again.
        """
        if not self.intake:
            raise RuntimeError("this link only drains an earlier run's spool")
        machine = self.machine
        first = not machine.has_pending
        if machine.offer(item.batch, history=item.history, now=time.time()):
            if self._cut_soon is None:
                self._cut_soon = asyncio.get_running_loop().call_soon(self.cut)
        elif first:
            loop = asyncio.get_running_loop()
            self._linger_handle = loop.call_later(self.options.linger, self.cut)

    def flush(self) -> None:
        """Cut now what :meth:`offer` scheduled for the end of this turn (the collector
        calls it when its burst is ingested: one loop iteration less per message)."""
        if self._cut_soon is not None:
            self.cut()

    def cut(self) -> None:
        """Turn the pending batches into numbered messages in the spool."""
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        if self._cut_soon is not None:
            self._cut_soon.cancel()
            self._cut_soon = None
        machine = self.machine
        if machine.cut():
            self._work.set()
        if machine.blocked:  # the spool refused: retry shortly (acks also retry)
            loop = asyncio.get_running_loop()
            self._linger_handle = loop.call_later(_RETRY_CUT_S, self.cut)
        self._sync_room()

    def hold_room_open(self) -> None:
        """Stopping: take every batch the workers still send, whatever the spool says,
        or they could never finish their last send and stop (pending batches then wait
        in memory until the drain cuts them)."""
        self._room_held_open = True
        self.room.set()
        self._room_changed()

    def watch_room(self, watcher: Callable[[], None]) -> None:
        """Call ``watcher`` whenever :attr:`room` may have changed (an intake gate over
        several links follows them)."""
        self._room_watchers.append(watcher)

    def _sync_room(self) -> None:
        if self.machine.room or self._room_held_open:
            self.room.set()
        else:
            self.room.clear()
        self._room_changed()

    def _room_changed(self) -> None:
        for watcher in self._room_watchers:
            watcher()

    # ------------------------------------------------------------ state
    @property
    def state(self) -> LinkState:
        machine = self.machine
        spool = self._spool
        return LinkState(
            connected=self.connected,
            url=self.url,
            session=spool.session,
            backlog_batches=len(spool),
            backlog_ticks=spool.ticks + machine.pending_ticks,
            last_sent_seq=machine.sent,
            last_acked_seq=machine.acked,
            ticks_acked=machine.ticks_acked,
            reconnects=self._reconnects,
            rtt=self.rtt,
            spool_fill=spool.fill_ratio,
            intake_paused=not self.room.is_set(),
            last_error=machine.halted or machine.disk_error or self._last_error,
            max_frame_bytes=machine.frame_limit,
            largest_frame_bytes=machine.largest_frame,
            resumed_batches=self._resumed,
            lost_batches=machine.lost_messages,
            spool_disk_error=machine.disk_error,
            spool_folder=str(spool.directory or ""),
            halted=machine.halted,
        )

    def all_acked(self) -> bool:
        return self.machine.all_acked()

    async def drain(self, timeout: float) -> bool:
        """Cut what is pending and wait until the peer acked everything; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.machine.has_pending:
                self.cut()
            if self.machine.all_acked():
                return True
            if time.monotonic() > deadline or self.machine.halted:
                return False
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------ acks
    def _on_ack(self, seq: int) -> None:
        """A cumulative ack up to ``seq``: release the spool, feed the latency sink, and
        cut what waited if the link just went idle or the spool has room again."""
        acked = self.machine.on_ack(seq)
        sink = self._latency_sink
        if sink is not None and acked:
            now = time.time()
            for item in acked:
                if item.times is not None:
                    sink(now, item.captured_at, item.times)
        machine = self.machine
        if machine.has_pending and (machine.idle or machine.blocked):
            self.cut()
        else:
            self._sync_room()
        if machine.can_send:  # else waking the sender would only find nothing to send
            self._work.set()

    # ------------------------------------------------------------ connection
    async def run(self) -> None:
        """Connect, stream, and reconnect after the backoff policy, until cancelled."""
        backoff = Backoff(self.options.policy)
        while True:
            try:
                await self._session(backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._note_error(self._failure(exc))
            finally:
                self._session_ended()
                self.machine.on_disconnect()
                self._sync_room()
            if self.machine.halted:
                self._note_error(self.machine.halted)
            self._reconnects += 1
            delay = self._retry_delay(backoff)
            log.info("%s down; reconnecting in %.2f s", self.name, delay)
            await asyncio.sleep(delay)

    async def _session(self, backoff: Backoff) -> None:
        """One connection: return or raise when it ends (``backoff.reset()`` once up)."""
        raise NotImplementedError

    def _failure(self, exc: Exception) -> str:
        """What went wrong, in one line (a subclass names its own failures first)."""
        log.exception("%s failed unexpectedly", self.name)
        return f"internal error: {type(exc).__name__}: {exc}"

    def _session_ended(self) -> None:
        """Forget the connection (called after every session, however it ended)."""

    def _retry_delay(self, backoff: Backoff) -> float:
        return backoff.next_delay()

    def _note_error(self, text: str) -> None:
        if text != self._last_error:
            log.warning("%s %s: %s", self.name, self.url, text)
        self._last_error = text

    async def close(self) -> None:
        if self._linger_handle is not None:
            self._linger_handle.cancel()
        if self._cut_soon is not None:
            self._cut_soon.cancel()
