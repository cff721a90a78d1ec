"""The reference backend in a child process of its own, started and stopped from a parent.

Why a process: the bridge decodes every tick message and commits it to SQLite. Run on
the desktop window's asyncio loop (the embedded default), that work competed with the
window for the GIL and the loop; in a child process it runs on another core, and the
window's process keeps only the capture and the link.

The child is started with multiprocessing's ``spawn`` method, like the capture workers,
so it behaves the same on every OS and in the frozen build (``packaging/entry.py`` runs
``freeze_support()`` first, so a re-executed copy of the program becomes this child).

Parent and child talk over one duplex pipe of small pickled tuples:

* child → parent: ``("ready", where)`` with the bound ports and URLs, or
  ``("error", kind, text)`` when it could not start (``kind`` is ``"os"`` for an
  ``OSError`` such as a port in use); then ``("log", record)`` for its log records,
  so they reach the parent's handlers (the window's journal, the log file), and
  ``("stopped",)`` after an orderly stop;
* parent → child: ``("stop",)``, the orderly stop request.

Authentication without typing: the parent makes a fresh random key for every backend it
starts and hands it to the child inside the spawn arguments, which travel over
multiprocessing's pipe, never argv, environment or disk. The child accepts that key in
memory only, for the one client id it serves (plus whatever users its users file has);
the parent's link and hub client present it. A new user types nothing, and no secret is
ever written in plaintext.

The child never outlives the parent: a parent that exits without asking (crash,
``kill -9``) closes its end of the pipe, and the child also watches the parent's process
sentinel as the workers do. Either way it stops the backend the orderly way, so every
message the bridge acknowledged is committed before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

from app.ports import service_url
from app.security.secret import Secret

log = logging.getLogger(__name__)

#: How long the parent waits for the child to report it listens (imports included).
START_TIMEOUT = 60.0
#: How long an orderly stop may take before the child is terminated, then killed.
STOP_TIMEOUT = 15.0
#: How long a child whose parent vanished may spend stopping before it just exits.
ORPHAN_STOP_TIMEOUT = 15.0

EXIT_STOPPED = 0
EXIT_START_FAILED = 1
#: The orderly stop after the parent vanished did not finish in time.
EXIT_ORPHAN_TIMEOUT = 2


class BackendProcessError(RuntimeError):
    """The backend process could not start; ``kind`` is ``"os"`` for an ``OSError``
    (typically a port in use), ``"error"`` for anything else, ``"died"`` when the child
    exited without a word, ``"timeout"`` when it never reported."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """What the child builds its :class:`~app.server.server.ReferenceBackend` from
    (pickled to the child, so plain values only)."""

    host: str
    bridge_port: int
    gateway_port: int
    hub_port: int
    db_path: str
    synchronous: str = "FULL"
    #: The parent's logging level: records below it are not even sent.
    log_level: int = logging.WARNING
    #: The client id the per-run key may use, and the key (never in a repr).
    client_id: str = ""
    key: str = field(default="", repr=False)
    #: Run the demo signal source over the stored ticks.
    demo_signals: bool = True


@dataclass(frozen=True, slots=True)
class BackendWhere:
    """Where the child listens (the ports it actually bound)."""

    pid: int
    bridge_port: int
    gateway_port: int
    hub_port: int
    bridge_url: str
    gateway_url: str
    hub_url: str


# ---------------------------------------------------------------------------- child side
class _Channel:
    """The child's end of the pipe; sends come from the loop and from logging threads."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, msg: tuple[Any, ...]) -> bool:
        with self._lock:
            try:
                self.conn.send(msg)
            except (OSError, EOFError, ValueError):
                return False  # the parent is gone (or the pipe closed): nobody to tell
        return True


class _PipeLogHandler(logging.Handler):
    """Ships the child's log records to the parent, formatted (args may not pickle)."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                "name": record.name,
                "levelno": record.levelno,
                "levelname": record.levelname,
                "msg": record.getMessage(),
                "created": record.created,
                "threadName": record.threadName,
                "processName": "embedded-backend",
            }
            if record.exc_info:
                fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
            self.channel.send(("log", fields))
        except Exception:
            self.handleError(record)


def _watch(conn: Connection, request_stop: Callable[[str], None]) -> None:
    """Read the pipe until a stop request or EOF (the parent closed it or died)."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            request_stop("the parent closed the pipe")
            return
        if isinstance(msg, tuple) and msg and msg[0] == "stop":
            request_stop("stop requested")
            return


def _watch_parent(request_stop: Callable[[str], None]) -> None:
    """Like the workers' parent watch: notices a parent that vanished even while the
    pipe is still open somewhere (e.g. inherited by a grandchild)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    while parent.is_alive():
        parent.join(timeout=1.0)
    request_stop("the parent process is gone")


def _orphan_deadline(stopped: threading.Event) -> None:
    """An orderly stop after the parent vanished gets a deadline; then the child exits."""
    if not stopped.wait(ORPHAN_STOP_TIMEOUT):
        os._exit(EXIT_ORPHAN_TIMEOUT)


async def _serve(spec: BackendSpec, conn: Connection, channel: _Channel) -> int:
    from app.server.server import ReferenceBackend  # noqa: PLC0415 - after logging is set
    from app.server.users import Principal  # noqa: PLC0415 - after logging is set

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stopped = threading.Event()
    orphan_watch_started = False

    def request_stop(why: str) -> None:
        nonlocal orphan_watch_started
        if why != "stop requested" and not orphan_watch_started:
            orphan_watch_started = True
            threading.Thread(
                target=_orphan_deadline, args=(stopped,), name="orphan-deadline", daemon=True
            ).start()
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(_set_stop, why)

    def _set_stop(why: str) -> None:
        if not stop.is_set():
            log.info("embedded backend stopping: %s", why)
            stop.set()

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        # SIGTERM (``Process.terminate``, the OS shutting down) is an orderly stop too.
        loop.add_signal_handler(signal.SIGTERM, _set_stop, "SIGTERM")
    threading.Thread(target=_watch, args=(conn, request_stop), name="pipe", daemon=True).start()
    threading.Thread(
        target=_watch_parent, args=(request_stop,), name="parent-watch", daemon=True
    ).start()

    backend = ReferenceBackend(
        host=spec.host,
        bridge_port=spec.bridge_port,
        gateway_port=spec.gateway_port,
        hub_port=spec.hub_port,
        db_path=Path(spec.db_path),
        synchronous=spec.synchronous,
        keys={spec.key: Principal("@embedded", frozenset({spec.client_id}))}
        if spec.key and spec.client_id
        else None,
        demo_signals=spec.demo_signals,
    )
    try:
        await backend.start()
    except OSError as exc:
        channel.send(("error", "os", exc.strerror or str(exc)))
        return EXIT_START_FAILED
    except Exception as exc:
        channel.send(("error", "error", f"{type(exc).__name__}: {exc}"))
        return EXIT_START_FAILED
    where = BackendWhere(
        os.getpid(),
        backend.bridge_port,
        backend.gateway_port,
        backend.hub_port,
        backend.bridge_url,
        backend.gateway_url,
        backend.hub_url,
    )
    channel.send(("ready", where))
    try:
        await stop.wait()
    finally:
        # The bridge stops first and commits everything it acknowledged.
        await backend.stop()
        stopped.set()
    channel.send(("stopped",))
    return EXIT_STOPPED


def serve_backend(spec: BackendSpec, conn: Connection) -> None:
    """Process entry point (a module-level function, as ``spawn`` requires)."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when the
    # backend stops (after the link delivered what was captured), so ignore it here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = _Channel(conn)
    root = logging.getLogger()
    root.handlers.clear()
    root.addHandler(_PipeLogHandler(channel))
    root.setLevel(spec.log_level)
    code = asyncio.run(_serve(spec, conn, channel))
    logging.shutdown()
    with contextlib.suppress(OSError):
        conn.close()
    sys.exit(code)


# ---------------------------------------------------------------------------- parent side
class BackendProcess:
    """The parent's handle on a reference backend running in a child process.

    :meth:`start` returns once the child listens (or raises :class:`BackendProcessError`
    with the child's reason, no child left behind); :meth:`stop` asks for an orderly
    stop, then terminates, then kills. It can be started again after a stop: the same
    ports (those bound the first time, when 0 was asked for) and the same database.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        bridge_port: int = 3001,
        gateway_port: int = 8000,
        hub_port: int = 7000,
        db_path: Path | str,
        synchronous: str = "FULL",
        client_id: str = "",
        demo_signals: bool = True,
    ) -> None:
        self.host = host
        self.demo_signals = demo_signals
        #: The client id the per-run key is good for ("" = no key: users file only).
        self.client_id = client_id
        #: The key this backend accepts for ``client_id``, fresh for each instance.
        self.credential = Secret(secrets.token_urlsafe(32))
        self.db_path = Path(db_path)
        self._ports = {"bridge": bridge_port, "gateway": gateway_port, "hub": hub_port}
        self._synchronous = synchronous
        self._where: BackendWhere | None = None
        self._proc: SpawnProcess | None = None
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._stopping = False

    # ------------------------------------------------------------------ lifetime
    async def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("the backend process is already running")
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        spec = BackendSpec(
            host=self.host,
            bridge_port=self._ports["bridge"],
            gateway_port=self._ports["gateway"],
            hub_port=self._ports["hub"],
            db_path=str(self.db_path),
            synchronous=self._synchronous,
            log_level=logging.getLogger().getEffectiveLevel(),
            client_id=self.client_id,
            key=self.credential.reveal(),
            demo_signals=self.demo_signals,
        )
        # daemon: should the parent exit without stop(), multiprocessing's exit handler
        # still terminates (SIGTERM: an orderly stop) and joins the child.
        proc = ctx.Process(
            target=serve_backend, args=(spec, child_conn), name="embedded-backend", daemon=True
        )
        await asyncio.to_thread(proc.start)
        child_conn.close()  # the child holds its end; ours would hide the child's EOF
        self._proc, self._conn, self._stopping = proc, parent_conn, False
        try:
            where = await asyncio.to_thread(self._await_ready, proc, parent_conn)
        except BaseException:
            # A child that never answered (or the caller gave up) is asked to stop too.
            with contextlib.suppress(OSError, ValueError):
                parent_conn.send(("stop",))
            await self._reap(proc)
            self._proc = self._conn = None
            parent_conn.close()
            raise
        self._where = where
        self._ports = {
            "bridge": where.bridge_port,
            "gateway": where.gateway_port,
            "hub": where.hub_port,
        }
        self._reader = threading.Thread(
            target=self._read, args=(proc, parent_conn), name="embedded-backend-pipe", daemon=True
        )
        self._reader.start()

    def _await_ready(self, proc: SpawnProcess, conn: Connection) -> BackendWhere:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendProcessError("timeout", f"no answer within {START_TIMEOUT:.0f} s")
            try:
                if not conn.poll(min(left, 0.5)):
                    if not proc.is_alive():
                        raise BackendProcessError(
                            "died", f"the backend process exited with code {proc.exitcode}"
                        )
                    continue
                msg = conn.recv()
            except (EOFError, OSError):
                proc.join(timeout=5)
                raise BackendProcessError(
                    "died", f"the backend process exited with code {proc.exitcode}"
                ) from None
            if msg[0] == "ready":
                where: BackendWhere = msg[1]
                return where
            if msg[0] == "error":
                raise BackendProcessError(msg[1], msg[2])
            if msg[0] == "log":
                _relog(msg[1])

    def _read(self, proc: SpawnProcess, conn: Connection) -> None:
        """Relay the child's log records until it exits; say so if it exits unasked."""
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if msg[0] == "log":
                _relog(msg[1])
            elif msg[0] == "stopped":
                break
        if not self._stopping:
            proc.join(timeout=5)
            log.error(
                "the embedded backend (pid %s) exited unexpectedly (code %s)",
                proc.pid,
                proc.exitcode,
            )

    async def stop(self) -> None:
        """Idempotent. Orderly first (the bridge commits what it acknowledged)."""
        proc, conn = self._proc, self._conn
        if proc is None or conn is None:
            return
        self._stopping = True
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            conn.send(("stop",))
        await self._reap(proc)
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 5.0)
            self._reader = None
        conn.close()
        self._proc = self._conn = None

    async def _reap(self, proc: SpawnProcess) -> None:
        """Wait for the child to exit: politely, then SIGTERM, then SIGKILL."""
        self._stopping = True
        await asyncio.to_thread(proc.join, STOP_TIMEOUT)
        if proc.is_alive():
            log.warning("the backend process (pid %s) did not stop; terminating it", proc.pid)
            proc.terminate()
            await asyncio.to_thread(proc.join, 5.0)
        if proc.is_alive():
            proc.kill()
            await asyncio.to_thread(proc.join, 5.0)
        with contextlib.suppress(ValueError):
            proc.close()

    # ------------------------------------------------------------------ where
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs (None before start and after stop)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def bridge_port(self) -> int:
        return self._ports["bridge"]

    @property
    def gateway_port(self) -> int:
        return self._ports["gateway"]

    @property
    def hub_port(self) -> int:
        return self._ports["hub"]

    @property
    def bridge_url(self) -> str:
        if self._where is not None:
            return self._where.bridge_url
        from app.server.bridge import PATH  # noqa: PLC0415 - only for a URL before start

        return service_url("ws", self.host, self.bridge_port, PATH)

    @property
    def gateway_url(self) -> str:
        return (
            self._where.gateway_url
            if self._where is not None
            else service_url("http", self.host, self.gateway_port)
        )

    @property
    def hub_url(self) -> str:
        return (
            self._where.hub_url
            if self._where is not None
            else service_url("http", self.host, self.hub_port)
        )

    def stats(self) -> dict[str, Any]:
        """The delivery statistics of the backend's database (protocol.md §2), read from
        the file: the store itself lives in the child. Blocking; call via ``to_thread``."""
        from app.server.store import TickStore  # noqa: PLC0415 - sqlite only when asked

        with TickStore(self.db_path) as store:
            return store.stats()


def _relog(fields: dict[str, Any]) -> None:
    record = logging.makeLogRecord(fields)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)
