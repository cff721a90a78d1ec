"""The harness of ``bench pipeline``: settings, progress lines on stderr, deadlines
(every phase, every clean-up), the subprocesses it measures against, and RSS."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import psutil

from app.bench import PHASES
from app.security.secret import Secret

_T = TypeVar("_T")

#: How long the bridge is down in the backlog phase, counted from the workers streaming.
OUTAGE_S: Final = 10.0
#: Longest wait for a runtime or a subprocess to stop before its processes are killed.
STOP_TIMEOUT_S: Final = 60.0


class PhaseError(RuntimeError):
    """A phase cannot complete; the message is the one line printed for it."""


@dataclass(frozen=True, slots=True)
class Settings:
    seconds: float = 5.0
    synchronous: str = "FULL"
    phases: tuple[str, ...] = PHASES
    #: Longest wait for a phase's processes to come up (workers streaming, link up).
    startup_timeout: float = 120.0
    outage: float = OUTAGE_S

    def run_deadline(self) -> float:
        """Deadline of one pipeline run: start-up, a generous multiple of the measured
        time (a loaded machine is slow, not stuck), and a minute to stop."""
        return self.startup_timeout + self.seconds * 4 + 60


class Progress:
    """Timestamped lines on stderr, so that stdout holds the JSON document alone."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    def say(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')}  {text}", file=self._stream or sys.stderr, flush=True)

    def failed(self, phase: str, reason: str) -> None:
        print(f"phase {phase} failed: {reason}", file=self._stream or sys.stderr, flush=True)


# ------------------------------------------------------------------ never hang
async def finish(stopping: Awaitable[object], timeout: float) -> bool:
    """Await a clean-up to its end even if the phase is cancelled meanwhile (a deadline
    or Ctrl-C must not leave processes behind); False if it took longer than ``timeout``.
    A cancellation that arrived meanwhile is raised again once the clean-up is over."""
    task = asyncio.ensure_future(stopping)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    cancelled = False
    while not task.done() and loop.time() < deadline:
        try:
            await asyncio.wait({task}, timeout=deadline - loop.time())
        except asyncio.CancelledError:
            cancelled = True
    done = task.done()
    if not done:
        task.cancel()
    elif not task.cancelled() and task.exception() is not None:
        done = False
    if cancelled:
        raise asyncio.CancelledError
    return done


def kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


async def run_phase(
    name: str,
    deadline: float,
    work: Callable[[], Coroutine[Any, Any, _T]],
    progress: Progress,
    failed: list[str],
) -> _T | None:
    """Run one phase under its deadline; on failure, one line on stderr and ``None``."""
    progress.say(f"phase {name}: started (deadline {deadline:.0f} s)")
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(deadline):
            result = await work()
    except TimeoutError:
        reason = f"did not finish within {deadline:.0f} s"
    except PhaseError as exc:
        reason = str(exc)
    except Exception as exc:  # any failure of one phase: reported, the others still run
        reason = f"{type(exc).__name__}: {exc}"
    else:
        progress.say(f"phase {name}: done in {time.monotonic() - t0:.1f} s")
        return result
    failed.append(name)
    progress.failed(name, reason)
    return None


@contextlib.asynccontextmanager
async def server_process(what: str, startup: float, *args: str) -> AsyncIterator[str]:
    """Run ``python -m ARGS`` and yield the first line it prints (its URLs); terminate it
    on the way out, and kill it if it has not exited within a minute."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(startup):
                line = await proc.stdout.readline()
        except TimeoutError:
            raise PhaseError(f"the {what} did not come up within {startup:g} s") from None
        if not line:
            code = await proc.wait()
            raise PhaseError(f"the {what} exited before it was ready (exit code {code})")
        yield line.decode().strip()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            if not await finish(proc.wait(), STOP_TIMEOUT_S):
                kill([proc.pid])
                await finish(proc.wait(), 10)


#: The benchmark's backend user: made fresh for each benchmark process, in the users file
#: of each database it runs a backend on (the backend has no default account).
BENCH_USER: Final = "bench"
_BENCH_PASSWORD: Final = secrets.token_urlsafe(24)
BENCH_CREDENTIAL: Final = Secret(f"{BENCH_USER}:{_BENCH_PASSWORD}")


def _add_bench_user(db: Path) -> None:
    from app.server.users import UserStore, users_path  # noqa: PLC0415 - server side only

    store = UserStore(users_path(db))
    if store.get(BENCH_USER) is not None:
        store.remove(BENCH_USER)
    store.add(BENCH_USER, _BENCH_PASSWORD, [BENCH_USER])


def backend_args(settings: Settings, db: Path, ports: list[int] | None = None) -> list[str]:
    """``python -m`` arguments of a backend on ``db`` (whose users file gets the bench
    user, so that the runs' :data:`BENCH_CREDENTIAL` opens it)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    _add_bench_user(db)
    bridge, gateway, hub = ports or [0, 0, 0]
    return [
        "app",
        "backend",
        "--bridge-port",
        str(bridge),
        "--gateway-port",
        str(gateway),
        "--hub-port",
        str(hub),
        "--synchronous",
        settings.synchronous,
        "--db",
        str(db),
    ]


def _urls(line: str) -> list[str]:
    """The bridge, gateway and hub URLs from the backend's start-up line, in that order."""
    found = [w.strip(",;") for w in line.split() if "://" in w]
    bridge = next(u for u in found if u.startswith("ws"))
    http = [u for u in found if u.startswith("http")]
    return [bridge, http[0], http[1]]


@contextlib.asynccontextmanager
async def backend_process(settings: Settings, db: Path) -> AsyncIterator[list[str]]:
    """The reference backend on free ports; yields its bridge, gateway and hub URLs."""
    args = backend_args(settings, db)
    async with server_process("backend", settings.startup_timeout, *args) as line:
        yield _urls(line)


def cpu_seconds(pids: dict[str, int | None]) -> dict[str, float]:
    """User + system CPU time so far of each named process (NaN once it is gone)."""
    out = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
            out[name] = times.user + times.system
        except psutil.Error:
            out[name] = float("nan")
    return out


def backend_pid() -> int | None:
    """This process's reference backend child (``python -m app backend``), if any: its
    CPU is part of delivering a tick."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if "backend" in child.cmdline() and "--bridge-port" in child.cmdline():
                return child.pid
    return None


def rss_mb(pid: int | None = None) -> float:
    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.Error:
        return float("nan")
