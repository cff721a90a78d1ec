"""One connection of the pool: a process that owns one terminal API instance.

The ``MetaTrader5`` module is a blocking, process-wide singleton, so each connection
runs in its own process. The worker polls ``copy_ticks_from`` from its cursors (never
``symbol_info_tick`` snapshots, which skip ticks), cuts the overlap, and ships each new
batch to the supervisor as raw numpy bytes. On any terminal error it reports the MT5
code and text and exits; the supervisor decides whether and when to start it again.

The real module answers ``None`` (``False``) and leaves the reason in ``last_error()``:
every such answer is an error here, never "no ticks" (an *empty* array is "no ticks").
Once a second the worker asks ``terminal_info().connected``: a terminal that lost its
trade server still answers, but nothing new arrives; the worker reports "offline"
(not an error: it keeps polling from its cursors, so the ticks the terminal downloads
when it is back are captured without a hole) and "streaming" again when it is back.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from app.connector import wire
from app.connector.capture import CaptureCursor, PollSizer
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
    def __init__(self, spec: WorkerSpec, conn: Connection, api: MT5Api) -> None:
        self.spec = spec
        self.conn = conn
        self.api = api
        start = int(time.time() * 1000)
        self.cursors = {s: CaptureCursor(*spec.cursors.get(s, (start, 0))) for s in spec.symbols}
        self.sizers = {s: PollSizer(spec.max_batch) for s in spec.symbols}
        self.last_sent = time.monotonic()
        #: What "streaming" reports (sent again when the terminal is back online).
        self.info: dict[str, object] = {}
        #: None until the first check; then whether the terminal has its trade server.
        self.online: bool | None = None
        self.checked_at = -float("inf")

    def send(self, msg: wire.WorkerMessage) -> None:
        self.conn.send_bytes(wire.encode(msg))
        self.last_sent = time.monotonic()

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
        self.check_connection(time.monotonic())

    def check_connection(self, now: float) -> None:
        """Report "offline"/"streaming" when ``terminal_info().connected`` changes."""
        self.checked_at = now
        info = self.api.terminal_info()
        if info is None:
            raise _terminal_error(self.api, f"terminal_info {self.spec.terminal.name}")
        online = bool(info.connected)
        if online == self.online:
            return
        self.online = online
        if online:
            self.send(wire.StatusMsg("streaming", info=self.info))
        else:
            text = f"terminal {self.spec.terminal.name} offline: no connection to its trade server"
            self.send(wire.StatusMsg("offline", 0, text, info=self.info))

    def poll_once(self) -> bool:
        """Poll every symbol once; True when some answer was cut short (poll again now)."""
        more = False
        for symbol in self.spec.symbols:
            cursor, sizer = self.cursors[symbol], self.sizers[symbol]
            polled = self.api.copy_ticks_from(
                symbol, cursor.from_seconds, sizer.count, COPY_TICKS_ALL
            )
            if polled is None:
                raise _terminal_error(self.api, f"copy_ticks_from {symbol}")
            new, skipped = cursor.cut(polled)
            more |= sizer.after_poll(len(polled), skipped, len(new))
            if len(new):
                cursor.advance(new)
                self.send(TickBatch(symbol, new, self.spec.worker_id, time.time()))
        return more

    def stop_requested(self) -> bool:
        while self.conn.poll():
            if isinstance(wire.decode(self.conn.recv_bytes()), wire.StopMsg):
                return True
        return False

    def run(self) -> int:
        self.connect()
        while not self.stop_requested():
            more = self.poll_once()
            now = time.monotonic()
            if now - self.checked_at >= self.spec.connection_check_interval:
                self.check_connection(now)
            if time.monotonic() - self.last_sent >= self.spec.heartbeat_interval:
                self.send(wire.HeartbeatMsg())
            if not more:
                time.sleep(self.spec.poll_interval)
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
