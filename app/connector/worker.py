"""One connection of the pool: a process that owns one terminal API instance.

The ``MetaTrader5`` module is a blocking, process-wide singleton, so each connection
runs in its own process. The worker polls ``copy_ticks_from`` from its cursors (never
``symbol_info_tick`` snapshots, which skip ticks), cuts the overlap, and ships each new
batch to the supervisor as raw numpy bytes. On any terminal error it reports the MT5
code and text and exits; the supervisor decides whether and when to start it again.

Time: the terminal is read through :class:`~app.connector.server_clock.UtcTerminal`, so
cursors and batches are UTC. A configured zone (``TerminalSpec.zone()``, always set for
simulated and replay terminals) is used from the start. A real terminal's zone is
*detected* at connect (every connect: a reconnect is a new process) and re-checked every
:data:`RECHECK_S` seconds. Until it is known the worker reports ``detecting`` and does
not poll: reading ticks with a wrong offset would move the cursors by hours (a hole, or
ticks stamped in the future), while waiting loses nothing, as the ticks stay in the
terminal's history and the cursor resumes from the last captured tick. A closed market
gives no fresh tick, so a worker may wait in ``detecting`` until it opens; setting
``terminals[].server_time_zone`` skips detection. A detected zone is a fixed offset
(``"+03:00"``), so a broker's DST switch shows as a change: at a re-check (logged,
reported, used after one more round at the old offset, which reads the ticks stamped
before the switch right), or earlier, when a polled tick lies more than
:data:`FUTURE_LIMIT_MS` ahead of the clock (the spring switch read with the winter
offset): the ticks before it are kept and the worker detects again. The spring switch is
captured exactly either way (tests/connector/test_server_time.py). The autumn switch is
not, for a 24/7 symbol: after it, asking from the cursor with the new offset returns the
hour before the switch again, read an hour late. Configure the zone (``ny-close``) where
that hour matters; FX and metals are closed then at a ny-close broker (Sunday morning).

The real module answers ``None`` (``False``) and leaves the reason in ``last_error()``:
every such answer is an error here, never "no ticks" (an *empty* array is "no ticks").
Once a second the worker asks ``terminal_info().connected``: a terminal that lost its
trade server still answers, but nothing new arrives; the worker reports "offline"
(not an error: it keeps polling from its cursors, so the ticks the terminal downloads
when it is back are captured without a hole) and "streaming" again when it is back.
One method, :meth:`_Worker.announce`, turns (online, zone) into the state reported.

Calls (the trading path, ``app/connector/calls.py``): the loop drains its pipe before
every polling round and waits for the next round in ``conn.poll`` rather than a sleep,
so a call is served at once when the worker is idle and after at most the current
round when it is busy; an order never waits behind the next poll. Calls run on the raw
API (server time, as the terminal shows trades); only the tick stream is read in UTC.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import numpy as np

from app.clock import SYSTEM_CLOCK, Clock
from app.connector import wire
from app.connector.calls import CALLABLE_METHODS, REFUSED_CODE
from app.connector.capture import CaptureCursor, PollSizer
from app.connector.server_clock import OffsetDetector, UtcTerminal, future_ms, zone_for_offset
from app.servertime import ServerTimeZone
from app.terminal.api import MT5Api
from app.terminal.constants import (
    CONNECTION_ERRORS,
    COPY_TICKS_ALL,
    RES_E_AUTH_FAILED,
    RES_E_INTERNAL_FAIL,
)
from app.terminal.loader import TerminalUnavailable, open_terminal
from app.terminal.spec import TerminalSpec
from app.ticks import TickBatch

log = logging.getLogger(__name__)

EXIT_STOPPED = 0
#: The terminal broke (IPC error, disconnect): starting again later may help.
EXIT_TERMINAL_ERROR = 3
#: The terminal refused us (authorization, unknown symbol, no MetaTrader5 package):
#: retrying without a change from the user cannot help.
EXIT_FATAL = 4

#: Seconds between looks at the symbols' last ticks while the zone is being detected.
DETECT_LOOK_S = 1.0
#: Seconds between re-checks of a detected zone (and of a configured zone's offset).
RECHECK_S = 60.0
#: A tick this far ahead of the UTC clock was read with a wrong offset.
FUTURE_LIMIT_MS = 120_000


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    worker_id: int
    terminal: TerminalSpec
    symbols: tuple[str, ...]
    #: symbol -> (last_msc, seen_at_last): where capture resumes.
    cursors: dict[str, tuple[int, int]] = field(default_factory=dict)
    poll_interval: float = 0.002
    max_batch: int = 10_000
    heartbeat_interval: float = 0.5
    #: Seconds between two ``terminal_info().connected`` checks (one cheap IPC call).
    connection_check_interval: float = 1.0


class _FatalError(Exception):
    def __init__(self, code: int, text: str, exit_code: int) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.exit_code = exit_code


def _terminal_error(api: MT5Api, what: str, exit_code: int = EXIT_TERMINAL_ERROR) -> _FatalError:
    code, text = api.last_error()
    if code == RES_E_AUTH_FAILED:
        exit_code = EXIT_FATAL
    return _FatalError(code, f"{what}: {text}", exit_code)


def initialize_terminal(api: MT5Api, t: TerminalSpec) -> bool:
    """``initialize`` as the spec says (with a login only when one is configured)."""
    if t.login is None:
        return api.initialize(t.path, timeout=t.timeout_ms, portable=t.portable)
    return api.initialize(
        t.path,
        login=t.login,
        # Empty means "the password the terminal has saved for this login".
        password=t.password or "",
        server=t.server or "",
        timeout=t.timeout_ms,
        portable=t.portable,
    )


def watch_parent() -> None:
    """Exit when the supervisor is gone, even if the terminal call we are in hangs.

    Without this a worker stuck in a stalled terminal would outlive a crashed app.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    while True:
        parent.join(timeout=1.0)
        if not parent.is_alive():
            os._exit(EXIT_STOPPED)


class _Worker:
    def __init__(
        self, spec: WorkerSpec, conn: Connection, api: MT5Api, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.spec = spec
        self.conn = conn
        self.api = api
        self.clock = clock
        #: The configured zone, or None: detect it (real terminals).
        self.configured = spec.terminal.zone()
        self.terminal = UtcTerminal(api, self.configured)
        self.detector = OffsetDetector()
        self.next_look = 0.0
        self.reported_offset: int | None = None
        self.warned_zone = False
        #: A re-detected zone, used from the end of the current polling round.
        self.pending: ServerTimeZone | None = None
        self.info: dict[str, object] = {}
        start = int(clock.time() * 1000)  # UTC now: cursors are UTC
        self.cursors = {s: CaptureCursor(*spec.cursors.get(s, (start, 0))) for s in spec.symbols}
        self.sizers = {s: PollSizer(spec.max_batch) for s in spec.symbols}
        self.last_sent = clock.monotonic()
        #: None until the first check; then whether the terminal has its trade server.
        self.online: bool | None = None
        self.checked_at = -float("inf")

    def send(self, msg: wire.WorkerMessage) -> None:
        self.conn.send_bytes(wire.encode(msg))
        self.last_sent = self.clock.monotonic()

    def connect(self) -> None:
        t = self.spec.terminal
        if not initialize_terminal(self.api, t):
            raise _terminal_error(self.api, f"initialize {t.name}")
        # Every connect, restarts included: a terminal serves data only for symbols in
        # its Market Watch, and a restarted terminal may show only its default set.
        for symbol in self.spec.symbols:
            if not self.api.symbol_select(symbol, True):
                code, text = self.api.last_error()
                retry = code in CONNECTION_ERRORS or code == RES_E_INTERNAL_FAIL
                raise _FatalError(
                    code,
                    f"symbol {symbol} is not available on {t.name}: {text}",
                    EXIT_TERMINAL_ERROR if retry else EXIT_FATAL,
                )
        version = self.api.version()
        if version is None:
            raise _terminal_error(self.api, f"version {t.name}")
        account = self.api.account_info()
        if account is None:
            raise _terminal_error(self.api, f"account_info {t.name}")
        self.info = {
            "pid": os.getpid(),
            "version": list(version),
            "login": account.login,
            "server": account.server,
        }
        self.check_connection(self.clock.monotonic(), announce=False)
        if self.configured is not None:
            self.report_zone(self.configured)
        else:
            self.announce()
        self.check_zone()

    def announce(self, was: ServerTimeZone | None = None) -> None:
        """Report the state that (online, zone) make: offline, detecting or streaming."""
        zone = self.terminal.zone
        info = dict(self.info)
        if zone is not None:
            info.update(server_time_zone=zone.key, server_offset_s=self.reported_offset)
        if was is not None:
            info["server_time_zone_was"] = was.key
        if self.online is False:
            text = f"terminal {self.spec.terminal.name} offline: no connection to its trade server"
            self.send(wire.StatusMsg("offline", 0, text, info=info))
        elif zone is None:
            self.send(wire.StatusMsg("detecting", info=info))
        else:
            self.send(wire.StatusMsg("streaming", info=info))

    def check_connection(self, now: float, *, announce: bool = True) -> None:
        """Report "offline"/"streaming" when ``terminal_info().connected`` changes."""
        self.checked_at = now
        info = self.api.terminal_info()
        if info is None:
            raise _terminal_error(self.api, f"terminal_info {self.spec.terminal.name}")
        online = bool(info.connected)
        if online == self.online:
            return
        self.online = online
        if announce:
            self.announce()

    # --- the server's clock --------------------------------------------------------------

    def report_zone(self, zone: ServerTimeZone, was: ServerTimeZone | None = None) -> None:
        """Use ``zone`` from now on and report it with its offset now (docs/time.md)."""
        self.terminal.zone = zone
        self.reported_offset = zone.offset_s(self.clock.time())
        self.announce(was)

    def check_zone(self) -> None:
        """Detect or re-check the zone when due (see the module doc)."""
        now = self.clock.monotonic()
        if now < self.next_look:
            return
        zone = self.terminal.zone
        self.next_look = now + (DETECT_LOOK_S if zone is None else RECHECK_S)
        if zone is not None and zone.offset_s(self.clock.time()) != self.reported_offset:
            self.report_zone(zone)  # a DST zone switched: keep the health true
        if self.configured is not None:
            return
        stamps = self.terminal.last_stamps(self.spec.symbols)
        offset = self.detector.observe(stamps, int(self.clock.time() * 1000))
        if offset is None or (zone is not None and zone.offset_s(self.clock.time()) == offset):
            return
        detected = zone_for_offset(offset, self.clock.time())
        if zone is None:
            log.info("worker %d: server time zone detected: %s", self.spec.worker_id, detected.key)
            self.report_zone(detected)
            return
        log.warning(
            "worker %d: server time zone changed from %s to %s",
            self.spec.worker_id,
            zone.key,
            detected.key,
        )
        # One more round with the old offset first: the ticks stamped before the switch
        # are read right with it (the ones after it are held back by the future guard).
        self.pending = detected

    def forget_zone(self, reason: str) -> None:
        """Back to detecting: the detected offset no longer holds."""
        log.warning(
            "worker %d: %s; detecting the server time zone again", self.spec.worker_id, reason
        )
        self.terminal.zone = None
        self.reported_offset = None
        self.next_look = 0.0
        self.announce()

    # --- ticks ---------------------------------------------------------------------------

    def poll_once(self) -> bool:
        """Poll every symbol once; True when some answer was cut short (poll again now)."""
        if self.terminal.zone is None:
            return False  # detecting: the ticks wait in the terminal
        more = False
        stale_reason = ""
        for symbol in self.spec.symbols:
            cursor, sizer = self.cursors[symbol], self.sizers[symbol]
            polled = self.terminal.copy_ticks_from(
                symbol, cursor.from_seconds, sizer.count, COPY_TICKS_ALL
            )
            if polled is None:
                raise _terminal_error(self.api, f"copy_ticks_from {symbol}")
            now_ms = int(self.clock.time() * 1000)
            ahead = future_ms(polled, now_ms)
            stale = ahead > FUTURE_LIMIT_MS and self.configured is None
            if stale:
                # Read with an offset that no longer holds (the spring switch): keep the
                # ticks before the first impossible one, which were read right, and end
                # the round on every symbol so (their pre-switch ticks are read right too).
                stale_reason = f"{symbol} ticks {ahead / 1000:.0f} s ahead of the clock"
                cut = np.searchsorted(polled["time_msc"], now_ms + FUTURE_LIMIT_MS, "right")
                polled = polled[: int(cut)]
            elif ahead > FUTURE_LIMIT_MS:
                self.warn_zone(f"{symbol} ticks are {ahead / 1000:.0f} s ahead of the clock")
            back = np.flatnonzero(np.diff(polled["time_msc"]) < 0)
            if len(back):
                # Read in UTC, an answer is in true order; a step back means the zone's
                # rule does not hold here (e.g. a broker on EU dates read as ny-close
                # across the US switch). Keep what precedes it, read right.
                polled = polled[: int(back[0]) + 1]
                if self.configured is None:
                    stale_reason = stale_reason or f"{symbol} ticks go back in time"
                else:
                    self.warn_zone(f"{symbol} ticks go back in time")
            new, skipped = cursor.cut(polled)
            more |= sizer.after_poll(len(polled), skipped, len(new))
            if len(new):
                cursor.advance(new)
                self.send(TickBatch(symbol, new, self.spec.worker_id, self.clock.time()))
        if stale_reason and self.pending is None:
            self.forget_zone(stale_reason)
            return False
        return more

    def warn_zone(self, what: str) -> None:
        """A configured zone that seems wrong: said once, the capture goes on as set."""
        if self.warned_zone or self.configured is None:
            return
        self.warned_zone = True
        log.warning(
            "%s: is terminals[%s].server_time_zone (%s) right?",
            what,
            self.spec.terminal.name,
            self.configured.key,
        )

    def step(self) -> bool:
        """One round of the loop: the zone when due, then a poll of every symbol."""
        self.check_zone()
        more = self.poll_once()
        now = self.clock.monotonic()
        if now - self.checked_at >= self.spec.connection_check_interval:
            self.check_connection(now)
        if self.pending is not None:
            new, self.pending = self.pending, None
            self.report_zone(new, self.terminal.zone)
        if self.clock.monotonic() - self.last_sent >= self.spec.heartbeat_interval:
            self.send(wire.HeartbeatMsg())
        return more

    def serve_pipe(self) -> bool:
        """Serve every call waiting in the pipe; True when a stop was requested."""
        while self.conn.poll():
            msg = wire.decode(self.conn.recv_bytes())
            if isinstance(msg, wire.StopMsg):
                return True
            if isinstance(msg, wire.CallMsg):
                self.send(self.answer(msg))
        return False

    def answer(self, call: wire.CallMsg) -> wire.ReplyMsg:
        """Run one allowed API call; a ``None`` answer carries ``last_error()``."""
        function = getattr(self.api, call.method, None)
        if call.method not in CALLABLE_METHODS or function is None:
            # A replay terminal does not trade: it has no order_send at all.
            text = f"{call.method} is not callable through a worker of this terminal"
            return wire.ReplyMsg(call.id, error=(REFUSED_CODE, text))
        try:
            result = function(*call.args, **call.kwargs)
        except (TypeError, ValueError) as exc:  # bad arguments: the module's "Invalid params"
            return wire.ReplyMsg(call.id, error=(REFUSED_CODE, f"{call.method}: {exc}"))
        if result is None:
            return wire.ReplyMsg(call.id, error=self.api.last_error())
        return wire.ReplyMsg(call.id, result)

    def run(self) -> int:
        self.connect()
        while not self.serve_pipe():
            if not self.step():
                # Not a sleep: a call arriving meanwhile wakes the loop at once.
                self.conn.poll(self.spec.poll_interval)
        return EXIT_STOPPED


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Process entry point (must stay a module-level function for ``spawn``)."""
    # Ctrl-C in a terminal reaches the whole process group; the supervisor decides when a
    # worker stops (it asks over the pipe), so the worker must not die on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    api: MT5Api | None = None
    exit_code = EXIT_STOPPED
    try:
        conn.send_bytes(wire.encode(wire.StatusMsg("connecting", info={"pid": os.getpid()})))
        api = open_terminal(spec.terminal)
        exit_code = _Worker(spec, conn, api).run()
    except TerminalUnavailable as exc:
        exit_code = _report(
            conn, wire.StatusMsg("failed", RES_E_INTERNAL_FAIL, str(exc)), EXIT_FATAL
        )
    except _FatalError as exc:
        state = "failed" if exc.exit_code == EXIT_FATAL else "error"
        exit_code = _report(conn, wire.StatusMsg(state, exc.code, exc.text), exc.exit_code)
    except (BrokenPipeError, EOFError, ConnectionResetError):
        exit_code = EXIT_STOPPED  # the supervisor is gone; nobody to report to
    except Exception as exc:  # a bug: report it like a terminal error, and be restarted
        log.exception("worker %d crashed", spec.worker_id)
        text = f"worker crashed: {type(exc).__name__}: {exc}"
        exit_code = _report(
            conn, wire.StatusMsg("error", RES_E_INTERNAL_FAIL, text), EXIT_TERMINAL_ERROR
        )
    finally:
        if api is not None:
            api.shutdown()
        conn.close()
    # os._exit skips interpreter teardown, which can hang on a broken terminal library.
    os._exit(exit_code)


def _report(conn: Connection, msg: wire.StatusMsg, exit_code: int) -> int:
    with contextlib.suppress(OSError, EOFError):
        conn.send_bytes(wire.encode(msg))
    return exit_code
