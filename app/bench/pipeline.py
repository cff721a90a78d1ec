"""``trading-client bench pipeline``: end-to-end throughput and latency, with its ceilings.

Every measurement runs against a server in *another* process over loopback, as a real
deployment does. The phases (``--phases`` runs a subset; ``--seconds`` is the measured
length of each):

* **raw_ceiling** — pre-generated ticks, the protocol's encoder and websockets, sent to
  a peer that acks without parsing: the most this machine's loopback and encoder allow;
* **parse_ceiling** — the same, but the peer validates every message with the bridge's
  own decoder (no storage): what any bridge that reads the ticks can reach;
* **capture_ceiling** — the full-speed pool and collector (same config, same offered
  rate) with delivery disabled: what the pipeline could take if delivery cost nothing;
* **fixed_rate** — the pipeline at 10,000 ticks/s: tick→ack latency percentiles. It runs
  before full speed, so that its RSS is not inflated by the full-speed backlog;
* **full_speed** — the whole pipeline (simulated terminal → worker processes →
  collector → bridge link → reference bridge parsing and storing in SQLite → ack) under
  an offered rate above what it can take: acked ticks/s, its ratio to the ceilings, RSS;
* **monitoring** — full speed again, alternating off/on/off/on, and the cost of the
  monitor's per-batch hot path against an empty call;
* **backlog** — 200,000 ticks/s offered with the bridge down for 10 s, then up: what was
  captured meanwhile, how long the backlog takes to drain, the largest frame against the
  bridge's announced limit, and whether the bridge stored every captured tick.

The benchmark must never hang (a full-speed run once looped for 200 s on a refused
frame): every phase has a deadline, a failing phase prints one line on stderr and is
listed under ``"failed"`` while the others still run, every subprocess is terminated
(killed if it does not exit), and progress goes to stderr once a second so a slow phase
is visibly slow rather than silently stuck.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import numpy as np
import numpy.typing as npt
import psutil
from websockets.asyncio.client import connect

from app.bench import PHASES
from app.clock import SYSTEM_CLOCK
from app.collector import SequencedBatch
from app.config import DEFAULT_SYMBOLS, ClientConfig
from app.monitor.histogram import LatencyHistogram
from app.monitor.monitor import Monitor
from app.ports import free_ports
from app.protocol import codec
from app.runtime import Runtime
from app.server.store import TickStore
from app.terminal.market import DEFAULT_PROFILES, Market
from app.ticks import TickBatch

_T = TypeVar("_T")

#: Offered ticks/s per symbol at full speed (and for the capture ceiling): above what the
#: pipeline can take on any machine we run on, so that the figure is its capacity.
FULL_SPEED_RATE: Final = 400_000.0
#: Per symbol at fixed rate: 10,000 ticks/s over the five default symbols.
FIXED_RATE: Final = 2_000.0
#: Per symbol in the backlog phase: 200,000 ticks/s in all.
BACKLOG_RATE: Final = 40_000.0
#: How long the bridge is down in the backlog phase, counted from the workers streaming.
OUTAGE_S: Final = 10.0
#: Caught up after an outage: every tick captured longer ago than this is acked.
CAUGHT_UP_LAG_S: Final = 0.1
#: Run before measuring, so that start-up transients (spawn, first connect) are excluded.
WARMUP_S: Final = 1.5
#: Longest wait for a runtime or a subprocess to stop before its processes are killed.
STOP_TIMEOUT_S: Final = 60.0
#: Ticks per message and messages in flight for the ceilings (the link's defaults).
CEILING_BATCH_TICKS: Final = 5_000
CEILING_WINDOW: Final = 64


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
async def _finish(stopping: Awaitable[object], timeout: float) -> bool:
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


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


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
            if not await _finish(proc.wait(), STOP_TIMEOUT_S):
                _kill([proc.pid])
                await _finish(proc.wait(), 10)


def _backend_args(settings: Settings, db: Path, ports: list[int] | None = None) -> list[str]:
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


# ------------------------------------------------------------------ ceilings
def _ceiling_batches(batch_ticks: int, per_symbol: int = 8) -> list[TickBatch]:
    """Distinct batches to send round-robin, cut from one generated run per symbol (the
    market generates whole seconds: one call per batch would take seconds at start-up)."""
    market = Market(42, DEFAULT_PROFILES, dict.fromkeys(DEFAULT_SYMBOLS, 50_000.0))
    now = int(time.time() * 1000)
    batches = []
    for sym in DEFAULT_SYMBOLS:
        ticks = market.ticks_from(sym, now - 60_000, batch_ticks * per_symbol, now)
        batches += [
            TickBatch(sym, ticks[i : i + batch_ticks]) for i in range(0, len(ticks), batch_ticks)
        ]
    return batches


async def raw_ceiling(
    url: str,
    seconds: float,
    batch_ticks: int,
    window: int,
    report: Callable[[str], None] | None = None,
) -> float:
    """Acked ticks/s for the protocol's encoder and websockets alone; ``report`` gets a
    progress line a second."""
    batches = _ceiling_batches(batch_ticks)
    async with connect(url, compression=None, max_size=codec.DEFAULT_MAX_FRAME_BYTES) as ws:
        await ws.send(codec.encode(codec.Hello("bench", "raw", 0)))
        welcome = codec.decode_bridge(await ws.recv())
        if not isinstance(welcome, codec.Welcome):
            raise PhaseError(f"the peer answered the hello with {type(welcome).__name__}")
        acked, sent = 0, 0
        room = asyncio.Event()
        room.set()
        done = False

        async def receive() -> None:
            nonlocal acked
            async for frame in ws:
                message = codec.decode_bridge(frame)
                if not isinstance(message, codec.Ack):
                    raise PhaseError(f"the peer sent {message!r}")
                acked = message.seq
                room.set()
                if done and acked == sent:
                    return

        receiver = asyncio.create_task(receive())
        t0 = time.perf_counter()
        next_report, last_acked = t0 + 1, 0
        try:
            while time.perf_counter() - t0 < seconds:
                if report is not None and time.perf_counter() >= next_report:
                    report(f"acked {(acked - last_acked) * batch_ticks:>11,} ticks/s")
                    next_report, last_acked = next_report + 1, acked
                if sent - acked >= window:
                    room.clear()
                    await room.wait()
                    continue
                sent += 1
                await ws.send(codec.encode_ticks(sent, [batches[sent % len(batches)]]))
            done = True
            if acked < sent:
                await asyncio.wait_for(receiver, 30)
            elapsed = time.perf_counter() - t0
            if report is not None:
                report(
                    f"acked {acked * batch_ticks / elapsed:>11,.0f} ticks/s over {elapsed:.1f} s"
                )
            return acked * batch_ticks / elapsed
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver


async def _ceiling_phase(settings: Settings, progress: Progress, *, parse: bool) -> float:
    args = ["app.bench.sink", *(["--parse"] if parse else [])]
    async with server_process("sink", settings.startup_timeout, *args) as url:
        name = "parse_ceiling" if parse else "raw_ceiling"
        return await raw_ceiling(
            url,
            settings.seconds,
            CEILING_BATCH_TICKS,
            CEILING_WINDOW,
            lambda text: progress.say(f"  {name}: {text}"),
        )


# ------------------------------------------------------------------ the pipeline
def _percentiles(hist: LatencyHistogram) -> dict[str, float]:
    """p50/p99/max in ms of a histogram of seconds (≈1 % buckets)."""
    if not hist.count:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "samples": 0}
    p50, p99 = hist.percentiles([50, 99])
    return {
        "p50": round(p50 * 1000, 3),
        "p99": round(p99 * 1000, 3),
        "max": round(hist.max * 1000, 3),
        "samples": hist.count,
    }


class _Latencies:
    """The link's latency sink: tick time → ack and capture → ack, while ``on``.

    Folded into the monitor's log-bucketed histograms (≈1 % error), not kept per tick:
    at full speed a list of every sample held 150 MB and counted as the app's RSS.
    """

    def __init__(self) -> None:
        self.tick = LatencyHistogram()
        self.capture = LatencyHistogram()
        self.on = False

    def __call__(self, ack_time: float, captured_at: float, times: npt.NDArray[np.int64]) -> None:
        if self.on:
            self.tick.record_many(np.maximum(ack_time - times / 1000.0, 1e-6))
            age = max(ack_time - captured_at, 1e-6)
            self.capture.record_many(np.full(len(times), age))

    def result(self) -> dict[str, dict[str, float]]:
        return {
            "tick_time_to_ack_ms": _percentiles(self.tick),
            "capture_to_ack_ms": _percentiles(self.capture),
        }


def pipeline_config(
    rate_per_symbol: float,
    spool_dir: Path,
    urls: list[str] | None,
    *,
    monitoring: bool = True,
) -> ClientConfig:
    """The benchmark's client settings; ``urls=None`` disables delivery altogether."""
    backend: dict[str, Any] = {"enabled": False}
    if urls is not None:
        bridge, gateway, hub = urls
        backend = {
            "bridge_url": bridge,
            "gateway_url": gateway,
            "hub_url": hub,
            "embedded": "never",
            "client_id": "bench",
            "spool_dir": str(spool_dir),
        }
    return ClientConfig.model_validate(
        {
            "terminals": [{"rates": dict.fromkeys(DEFAULT_SYMBOLS, rate_per_symbol)}],
            "backend": backend,
            "backfill": {"enabled": False, "state_file": str(spool_dir / "backfill.json")},
            "monitor": {"enabled": monitoring},
        }
    )


def _fresh(parent: Path) -> Path:
    """A spool folder of its own for one run: the runtime resumes what an earlier run left
    unacknowledged in its spool folder, which would mix one run's backlog into the next."""
    return Path(tempfile.mkdtemp(prefix="spool-", dir=parent))


def _acked(rt: Runtime) -> int:
    return rt.link.state.ticks_acked if rt.link is not None else 0


def _captured(rt: Runtime) -> int:
    return rt.collector.stats.ticks_total


def _streaming(rt: Runtime) -> int:
    return sum(w.state == "streaming" for w in rt.pool.health())


async def _report(rt: Runtime, name: str, progress: Progress) -> None:
    """One progress line a second: what was captured and acked since the last one."""
    last = time.monotonic(), _captured(rt), _acked(rt)
    while True:
        await asyncio.sleep(1.0)
        now, captured, acked = time.monotonic(), _captured(rt), _acked(rt)
        dt = max(now - last[0], 1e-9)
        workers = rt.pool.health()
        text = f"  {name}: captured {(captured - last[1]) / dt:>11,.0f} ticks/s"
        if rt.link is not None:
            state = rt.link.state
            text += f"  acked {(acked - last[2]) / dt:>11,.0f} ticks/s"
            text += f"  link {'up' if state.connected else 'DOWN'}"
            text += f", backlog {state.backlog_ticks:,} ticks"
        text += f"  workers {_streaming(rt)}/{len(workers)} streaming"
        progress.say(text)
        last = now, captured, acked


@contextlib.asynccontextmanager
async def running(
    config: ClientConfig,
    settings: Settings,
    progress: Progress,
    name: str,
    *,
    latency_sink: _Latencies | None = None,
    need_link: bool = True,
) -> AsyncIterator[Runtime]:
    """A started runtime whose workers all stream (and whose link is up, if
    ``need_link``); stopped on the way out, its worker processes killed if stopping
    takes longer than a minute."""
    rt = Runtime(config, latency_sink=latency_sink)
    reporter = asyncio.create_task(_report(rt, name, progress))
    try:
        try:
            async with asyncio.timeout(settings.startup_timeout):
                await rt.start()
                while not (
                    rt.pool.health()
                    and _streaming(rt) == len(rt.pool.health())
                    and (not need_link or (rt.link is not None and rt.link.state.connected))
                ):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise PhaseError(
                f"the pipeline did not come up within {settings.startup_timeout:g} s"
            ) from None
        yield rt
    finally:
        reporter.cancel()
        pids = [w.pid for w in rt.pool.health() if w.pid]
        if not await _finish(rt.stop(), STOP_TIMEOUT_S):
            progress.say(f"  {name}: the runtime did not stop cleanly; killing its workers")
            _kill(pids)


def _rss_mb(pid: int | None = None) -> float:
    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.Error:
        return float("nan")


async def _loop_lag(worst: list[float], interval: float = 0.05) -> None:
    """The app's event loop blocked longest while measuring (a wake-up this late): a
    stall there holds back capture, delivery and the window alike, and stretches the
    measured span (hence ``measured_s``). Kept in ``worst[0]``, seconds."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(interval)
        worst[0] = max(worst[0], loop.time() - before - interval)


async def measure(
    rt: Runtime, seconds: float, latency_sink: _Latencies | None = None
) -> dict[str, Any]:
    """Captured and acked ticks/s over ``seconds`` after a warm-up, and RSS at the end."""
    await asyncio.sleep(WARMUP_S)
    if latency_sink is not None:
        latency_sink.on = True
    t0, c0, a0 = time.perf_counter(), _captured(rt), _acked(rt)
    worst_lag = [0.0]
    lag = asyncio.create_task(_loop_lag(worst_lag))
    await asyncio.sleep(seconds)
    t1, c1, a1 = time.perf_counter(), _captured(rt), _acked(rt)
    lag.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await lag
    if latency_sink is not None:
        latency_sink.on = False
    workers = {str(w.worker_id): _rss_mb(w.pid) for w in rt.pool.health() if w.pid}
    result: dict[str, Any] = {
        "offered_ticks_per_s": sum(sum(t.rates.values()) for t in rt.config.terminals),
        "captured_ticks_per_s": round((c1 - c0) / (t1 - t0)),
        **({"acked_ticks_per_s": round((a1 - a0) / (t1 - t0))} if rt.link is not None else {}),
        "measured_s": round(t1 - t0, 2),
        "loop_lag_max_ms": round(worst_lag[0] * 1000, 1),
        "rss_mb_app": _rss_mb(),
        "rss_mb_workers_total": round(sum(workers.values()), 1),
        "rss_mb_workers": workers,
    }
    if latency_sink is not None:
        result.update(latency_sink.result())
    return result


async def run_pipeline(
    urls: list[str] | None,
    rate_per_symbol: float,
    settings: Settings,
    *,
    progress: Progress,
    name: str,
    spool_dir: Path,
    monitoring: bool = True,
) -> dict[str, Any]:
    config = pipeline_config(rate_per_symbol, _fresh(spool_dir), urls, monitoring=monitoring)
    lat = _Latencies() if urls is not None else None
    async with running(
        config, settings, progress, name, latency_sink=lat, need_link=urls is not None
    ) as rt:
        return await measure(rt, settings.seconds, lat)


@contextlib.asynccontextmanager
async def backend_process(settings: Settings, db: Path) -> AsyncIterator[list[str]]:
    """The reference backend on free ports; yields its bridge, gateway and hub URLs."""
    args = _backend_args(settings, db)
    async with server_process("backend", settings.startup_timeout, *args) as line:
        yield _urls(line)


# ------------------------------------------------------------------ the backlog phase
async def _announced_limit(url: str) -> int | None:
    """``max_frame_bytes`` of the bridge's welcome, asked as a separate client."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10), connect(url, compression=None) as ws:
            await ws.send(codec.encode(codec.Hello("bench-probe", "limit", 0)))
            welcome = codec.decode_bridge(await ws.recv())
            if isinstance(welcome, codec.Welcome):
                return welcome.max_frame_bytes
    return None


def _stored_ticks(db: Path, client_id: str) -> dict[str, int]:
    with TickStore(db) as store:
        stats = store.stats()
    return {
        "ticks": sum(s["ticks"] for s in stats["sessions"] if s["client_id"] == client_id),
        "duplicate_batches": int(stats["duplicate_batches"]),
        "refused_messages": int(stats["refused_messages"]),
    }


async def backlog_phase(settings: Settings, progress: Progress, tmp: Path) -> dict[str, Any]:
    """Capture with the bridge down for ``settings.outage`` seconds, then bring it up on
    the ports the link already dials, and time the drain."""
    ports = free_ports(3)
    urls = [
        f"ws://127.0.0.1:{ports[0]}/ws",
        f"http://127.0.0.1:{ports[1]}",
        f"http://127.0.0.1:{ports[2]}",
    ]
    db = tmp / "backlog.sqlite"
    config = pipeline_config(BACKLOG_RATE, _fresh(tmp), urls)
    drain_deadline = settings.seconds * 4 + 60
    result: dict[str, Any] = {"offered_ticks_per_s": BACKLOG_RATE * len(DEFAULT_SYMBOLS)}
    # The backend is entered after the runtime but must stop after it (the runtime drains
    # into it on the way out): it goes on an outer exit stack.
    async with (
        contextlib.AsyncExitStack() as outer,
        running(config, settings, progress, "backlog", need_link=False) as rt,
    ):
        assert rt.link is not None
        down_since = time.monotonic()
        progress.say(f"  backlog: bridge down for {settings.outage:g} s")
        await asyncio.sleep(settings.outage)
        await outer.enter_async_context(
            server_process("backend", settings.startup_timeout, *_backend_args(settings, db, ports))
        )
        up_at = time.monotonic()
        captured_at_up = _captured(rt)
        progress.say(f"  backlog: bridge up; {captured_at_up:,} ticks captured while it was down")
        result["outage_s"] = round(up_at - down_since, 2)
        result["ticks_captured_during_outage"] = captured_at_up
        delivered_s, drain_s = await _drain(rt, captured_at_up, up_at, drain_deadline)
        state = rt.link.state
        result["outage_backlog_delivered_s"] = _round(delivered_s)
        result["drain_s"] = _round(drain_s)
        result["drained"] = drain_s is not None
        if drain_s is None:
            progress.say(f"  backlog: not drained within {drain_deadline:.0f} s")
        result["largest_frame_bytes"] = getattr(state, "largest_frame_bytes", None)
        limit = getattr(state, "max_frame_bytes", None) or await _announced_limit(urls[0])
        result["max_frame_bytes"] = limit
    # Runtime stopped (drained into the bridge), then the backend: read what it stored.
    captured = _captured(rt)
    state = rt.link.state
    stored = await asyncio.to_thread(_stored_ticks, db, "bench")
    result.update(
        {
            "ticks_captured": captured,
            "ticks_acked": state.ticks_acked,
            "backlog_ticks_at_stop": state.backlog_ticks,
            "ticks_stored_by_bridge": stored["ticks"],
            "duplicate_batches": stored["duplicate_batches"],
            "refused_messages": stored["refused_messages"],
            "every_tick_delivered": stored["ticks"] == captured,
        }
    )
    return result


async def _drain(
    rt: Runtime, captured_at_up: int, up_at: float, deadline: float
) -> tuple[float | None, float | None]:
    """Seconds from bridge up until the outage's ticks are acked, and until the link has
    caught up: every tick captured more than ``CAUGHT_UP_LAG_S`` earlier acked.

    Capture goes on meanwhile, so "acked == captured" holds only in the instants the
    link is idle, which a busy link may never show to a poll; a lag bound is what can be
    observed. The exact check — every captured tick stored — is made after the stop.
    """
    assert rt.link is not None
    history: collections.deque[tuple[float, int]] = collections.deque()
    delivered_s: float | None = None
    while time.monotonic() - up_at < deadline:
        now, captured, acked = time.monotonic(), _captured(rt), _acked(rt)
        history.append((now, captured))
        while len(history) > 1 and history[1][0] <= now - CAUGHT_UP_LAG_S:
            history.popleft()
        if delivered_s is None and acked >= captured_at_up:
            delivered_s = now - up_at
        old_enough = history[0][0] <= now - CAUGHT_UP_LAG_S
        if delivered_s is not None and old_enough and acked >= history[0][1]:
            return delivered_s, now - up_at
        await asyncio.sleep(0.01)
    return delivered_s, None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------ monitoring cost
def monitor_record_cost(calls: int = 200_000) -> dict[str, float]:
    """ns per ``Monitor.on_batch`` call (the per-batch hot path), against an empty call."""
    monitor = Monitor(clock=SYSTEM_CLOCK)
    ticks = Market(42, DEFAULT_PROFILES).ticks_range("EURUSD", 1_700_000_000_000, 1_700_000_060_000)
    item = SequencedBatch(1, TickBatch("EURUSD", ticks[:100], 1, time.time()), time.time())

    def empty(_: SequencedBatch) -> None:
        return None

    timings = {}
    for name, fn in (("baseline_empty_call", empty), ("on_batch", monitor.on_batch)):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn(item)
        timings[name] = (time.perf_counter_ns() - t0) / calls
    return {k: round(v, 1) for k, v in timings.items()}


async def monitoring_phase(settings: Settings, progress: Progress, tmp: Path) -> dict[str, Any]:
    """Full speed off/on/off/on, alternated so that drift of a busy machine hits both."""
    by_mode: dict[bool, list[int]] = {True: [], False: []}
    async with backend_process(settings, tmp / "monitoring.sqlite") as urls:
        for monitoring in (False, True, False, True):
            run = await run_pipeline(
                urls,
                FULL_SPEED_RATE,
                settings,
                progress=progress,
                name=f"monitoring {'on' if monitoring else 'off'}",
                spool_dir=tmp,
                monitoring=monitoring,
            )
            by_mode[monitoring].append(run["acked_ticks_per_s"])
    on, off = (statistics.mean(by_mode[m]) for m in (True, False))
    return {
        "record_ns_per_batch": monitor_record_cost(),
        "acked_ticks_per_s_off": by_mode[False],
        "acked_ticks_per_s_on": by_mode[True],
        "on_vs_off": round(on / off, 3) if off else None,
    }


# ------------------------------------------------------------------ the run
async def _phase(
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


def _ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 3) if num is not None and den else None


def _target(value: float | None, ok: Callable[[float], bool]) -> bool | None:
    """A target's verdict; ``None`` when its figure was not measured."""
    return None if value is None or math.isnan(value) else ok(value)


async def bench(settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Run the selected phases; the document lists what failed under ``"failed"``."""
    progress = progress or Progress()
    failed: list[str] = []
    run_deadline = settings.run_deadline()
    wanted = set(settings.phases)
    figures: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as name:
        tmp = Path(name)

        async def fixed() -> dict[str, Any]:
            async with backend_process(settings, tmp / "fixed.sqlite") as urls:
                return await run_pipeline(
                    urls, FIXED_RATE, settings, progress=progress, name="fixed_rate", spool_dir=tmp
                )

        async def full() -> dict[str, Any]:
            async with backend_process(settings, tmp / "full.sqlite") as urls:
                return await run_pipeline(
                    urls,
                    FULL_SPEED_RATE,
                    settings,
                    progress=progress,
                    name="full_speed",
                    spool_dir=tmp,
                )

        async def capture() -> dict[str, Any]:
            return await run_pipeline(
                None,
                FULL_SPEED_RATE,
                settings,
                progress=progress,
                name="capture_ceiling",
                spool_dir=tmp,
            )

        phases: dict[str, tuple[float, Callable[[], Coroutine[Any, Any, Any]]]] = {
            "raw_ceiling": (run_deadline, lambda: _ceiling_phase(settings, progress, parse=False)),
            "parse_ceiling": (run_deadline, lambda: _ceiling_phase(settings, progress, parse=True)),
            "capture_ceiling": (run_deadline, capture),
            "fixed_rate": (run_deadline, fixed),
            "full_speed": (run_deadline, full),
            "monitoring": (4 * run_deadline, lambda: monitoring_phase(settings, progress, tmp)),
            "backlog": (
                run_deadline + settings.outage + settings.startup_timeout + 60,
                lambda: backlog_phase(settings, progress, tmp),
            ),
        }
        for phase in PHASES:
            if phase in wanted:
                deadline, work = phases[phase]
                figures[phase] = await _phase(phase, deadline, work, progress, failed)
    return _document(settings, figures, failed)


def _document(settings: Settings, figures: dict[str, Any], failed: list[str]) -> dict[str, Any]:
    raw = figures.get("raw_ceiling")
    parsed = figures.get("parse_ceiling")
    capture = figures.get("capture_ceiling")
    capture_tps = capture["captured_ticks_per_s"] if capture else None
    full = figures.get("full_speed")
    full_tps = full["acked_ticks_per_s"] if full else None
    fixed = figures.get("fixed_rate")
    monitoring = figures.get("monitoring")
    backlog = figures.get("backlog")
    ratio_capture = _ratio(full_tps, capture_tps)
    if full is not None:
        full = {
            **full,
            "ratio_to_raw_ceiling": _ratio(full_tps, raw),
            "ratio_to_ceiling_with_parsing": _ratio(full_tps, parsed),
            "ratio_to_capture_ceiling": ratio_capture,
        }
    largest = backlog and backlog["largest_frame_bytes"]
    limit = backlog and backlog["max_frame_bytes"]
    return {
        "benchmark": "pipeline",
        "cpus": psutil.cpu_count(),
        "seconds_per_phase": settings.seconds,
        "bridge_sqlite_synchronous": settings.synchronous,
        "phases": list(settings.phases),
        "failed": failed,
        "raw_ceiling_ticks_per_s": round(raw) if raw is not None else None,
        "ceiling_with_bridge_parsing_ticks_per_s": round(parsed) if parsed is not None else None,
        "capture_ceiling_ticks_per_s": capture_tps,
        "capture_ceiling": capture,
        "full_speed": full,
        "fixed_rate": fixed,
        "monitoring": monitoring,
        "backlog": backlog,
        "targets": {
            "full_speed_ge_1_5M": _target(full_tps, lambda v: v >= 1_500_000),
            "ratio_to_capture_ceiling_ge_0_8": _target(ratio_capture, lambda v: v >= 0.8),
            "p99_tick_to_ack_le_2ms_at_10k": _target(
                fixed["tick_time_to_ack_ms"]["p99"] if fixed else None, lambda v: v <= 2.0
            ),
            "rss_app_le_300mb": _target(full["rss_mb_app"] if full else None, lambda v: v <= 300),
            "backlog_drained": None if backlog is None else bool(backlog["drained"]),
            "largest_frame_within_limit": (
                None if not largest or not limit else bool(largest <= limit)
            ),
            "monitoring_within_5_percent": _target(
                monitoring["on_vs_off"] if monitoring else None, lambda v: v >= 0.95
            ),
        },
    }
