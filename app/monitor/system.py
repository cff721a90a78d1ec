"""System usage of the client and its worker processes, sampled on a timer.

Usage is read with psutil every few seconds by :func:`run_sampler`, never per tick:
a sample costs about 0.3 ms on Linux with five workers, nothing once a second but a
real tax at tick rate. Everything that changes over time (CPU %, network bytes per
second) is a delta between two samples, so the sampler keeps state between calls:
one :class:`psutil.Process` per watched process, the last system CPU times and the
last network counters.

Processes come and go under the sampler: the supervisor restarts workers, a worker
dies between the moment its pid was read and the moment it is sampled. A vanished
process is never an error here; it is simply absent from that sample.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psutil

from app.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

__all__ = ["SystemSample", "SystemSampler", "WorkerUsage", "run_sampler"]


@dataclass(frozen=True, slots=True)
class WorkerUsage:
    """Usage of one worker process at one sample."""

    pid: int
    #: Percent of one core since the previous sample of *this pid* (psutil semantics:
    #: a busy loop reads 100, two busy threads 200). The first reading of a pid is 0.0,
    #: because psutil needs a previous reading to compute a delta; a restarted worker
    #: therefore shows 0.0 once, then real values.
    cpu_percent: float
    rss_bytes: int
    threads: int


@dataclass(frozen=True, slots=True)
class SystemSample:
    """One reading of the client process, the machine and the workers.

    Immutable and made of plain values, so it can be handed to the UI thread, the
    alert engine and the history without copying.
    """

    #: Wall-clock seconds (UTC) when the sample was taken.
    time: float
    #: Machine-wide CPU busy percent (0-100, all cores together) since the previous
    #: sample, or since the sampler was created for the first one.
    cpu_percent: float
    #: This process, percent of one core (may exceed 100 with several busy threads),
    #: over the same span as :attr:`cpu_percent`.
    process_cpu_percent: float
    rss_bytes: int
    threads: int
    #: Regular files this process has open; ``None`` where the platform refuses to
    #: tell (access denied, unsupported).
    open_files: int | None
    #: System-wide (all interfaces, loopback included) bytes per second since the
    #: previous sample; ``None`` on the first sample, which has nothing to compare to,
    #: and when the counters went backwards (an interface disappeared).
    net_in_bytes_per_s: float | None
    net_out_bytes_per_s: float | None
    #: Worker id -> usage, for the workers whose process could be read at this sample.
    workers: dict[int, WorkerUsage]

    def as_metrics(self) -> dict[str, float | None]:
        """Flat ``name -> value`` view, the vocabulary of the alert rules and the history.

        A worker that is absent from the sample has no ``worker.<id>.*`` names at all,
        rather than zeros, so "worker down" is never mistaken for "worker idle".
        """
        metrics: dict[str, float | None] = {
            "system.cpu_percent": self.cpu_percent,
            "system.process_cpu_percent": self.process_cpu_percent,
            "system.rss_bytes": float(self.rss_bytes),
            "system.threads": float(self.threads),
            "system.open_files": None if self.open_files is None else float(self.open_files),
            "system.net_in_bytes_per_s": self.net_in_bytes_per_s,
            "system.net_out_bytes_per_s": self.net_out_bytes_per_s,
        }
        for worker_id in sorted(self.workers):
            usage = self.workers[worker_id]
            metrics[f"worker.{worker_id}.cpu_percent"] = usage.cpu_percent
            metrics[f"worker.{worker_id}.rss_bytes"] = float(usage.rss_bytes)
        return metrics


def _cpu_busy_and_total() -> tuple[float, float]:
    """Machine busy and total CPU seconds, counted the way ``psutil.cpu_percent`` does.

    The sampler computes machine CPU from :func:`psutil.cpu_times` itself instead of
    calling ``psutil.cpu_percent(None)``, whose baseline is global per thread: any other
    caller on the same thread (a benchmark, a diagnostics view) would silently shorten
    our interval, and running the sampler from a thread pool would mix baselines.
    """
    times = psutil.cpu_times()
    total = float(sum(times))
    # On Linux guest time is already inside user/nice.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    # iowait is idle time that Linux does not count in idle.
    busy = total - times.idle - getattr(times, "iowait", 0.0)
    return busy, total


class SystemSampler:
    """Reads system usage; keeps what it needs to turn counters into rates.

    Not meant to be called concurrently, but a lock makes an accidental overlap (a
    cancelled :func:`run_sampler` whose thread is still finishing while a new one
    starts) harmless instead of corrupting the deltas.
    """

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._me = psutil.Process()
        # Prime the CPU baselines now, so the first sample covers the time since the
        # sampler was made instead of reading psutil's meaningless first 0.0.
        self._me.cpu_percent(None)
        self._cpu_times = _cpu_busy_and_total()
        self._net: tuple[float, int, int] | None = None
        self._workers: dict[int, psutil.Process] = {}

    def sample(self, worker_pids: Mapping[int, int | None]) -> SystemSample:
        """Take one sample; ``worker_pids`` maps worker id -> its current pid (or None).

        A worker whose pid is None, whose process is gone or a zombie, or which cannot
        be read is left out of :attr:`SystemSample.workers`. A worker id that now has
        a different pid (the supervisor restarted it) is followed to the new process.
        Worker ids missing from ``worker_pids`` are forgotten.
        """
        with self._lock:
            return self._sample(worker_pids)

    def _sample(self, worker_pids: Mapping[int, int | None]) -> SystemSample:
        now = self._clock.time()
        mono = self._clock.monotonic()

        busy, total = _cpu_busy_and_total()
        last_busy, last_total = self._cpu_times
        self._cpu_times = (busy, total)
        d_total = total - last_total
        cpu = 0.0 if d_total <= 0 else min(100.0, max(0.0, (busy - last_busy) / d_total * 100))

        with self._me.oneshot():
            process_cpu = self._me.cpu_percent(None)
            rss = self._me.memory_info().rss
            threads = self._me.num_threads()
        open_files = self._open_files()
        net_in, net_out = self._net_rates(mono)

        workers: dict[int, WorkerUsage] = {}
        procs: dict[int, psutil.Process] = {}
        for worker_id, pid in worker_pids.items():
            if pid is None:
                continue
            proc = self._workers.get(worker_id)
            try:
                if proc is None or proc.pid != pid:
                    proc = psutil.Process(pid)
                usage = self._read_worker(proc)
            except psutil.Error:
                # NoSuchProcess (died since the pid was read), AccessDenied: absent.
                continue
            if usage is None:
                continue
            procs[worker_id] = proc
            workers[worker_id] = usage
        self._workers = procs

        return SystemSample(
            time=now,
            cpu_percent=round(cpu, 1),
            process_cpu_percent=process_cpu,
            rss_bytes=rss,
            threads=threads,
            open_files=open_files,
            net_in_bytes_per_s=net_in,
            net_out_bytes_per_s=net_out,
            workers=workers,
        )

    @staticmethod
    def _read_worker(proc: psutil.Process) -> WorkerUsage | None:
        """Usage of one worker, or None when it is a zombie (dead, not yet reaped).

        A killed child stays a zombie until its parent waits for it; psutil still reads
        it (RSS 0), but for monitoring it is dead and must not look like an idle worker.
        """
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            # A pid reused by another process could make one delta negative.
            cpu = max(0.0, proc.cpu_percent(None))
            rss = proc.memory_info().rss
            threads = proc.num_threads()
        return WorkerUsage(pid=proc.pid, cpu_percent=cpu, rss_bytes=rss, threads=threads)

    def _open_files(self) -> int | None:
        try:
            return len(self._me.open_files())
        except (psutil.Error, NotImplementedError, OSError):
            return None

    def _net_rates(self, mono: float) -> tuple[float | None, float | None]:
        counters = psutil.net_io_counters()
        if counters is None:  # no interfaces at all (psutil returns None, not zeros)
            self._net = None
            return None, None
        last = self._net
        self._net = (mono, counters.bytes_recv, counters.bytes_sent)
        if last is None:
            return None, None
        dt = mono - last[0]
        d_in = counters.bytes_recv - last[1]
        d_out = counters.bytes_sent - last[2]
        if dt <= 0 or d_in < 0 or d_out < 0:
            return None, None
        return d_in / dt, d_out / dt


async def run_sampler(
    sampler: SystemSampler,
    interval: float,
    get_worker_pids: Callable[[], Mapping[int, int | None]],
    on_sample: Callable[[SystemSample], None],
) -> None:
    """Sample every ``interval`` seconds until cancelled, handing each sample to ``on_sample``.

    ``get_worker_pids`` and ``on_sample`` run on the loop (they touch loop-owned state:
    the pool, the alert engine); the sample itself runs in a worker thread. On Linux a
    sample takes well under a millisecond, but on Windows ``open_files`` walks the handle table
    and can take far longer, and the loop carries the ticks.

    The first sample comes one interval after the start, so its CPU figures cover a real
    span. The schedule does not drift; if a sample overruns, missed beats are skipped
    rather than bunched. An exception from a callback or a sample is logged and the loop
    goes on: a monitor that dies silently is worse than one missed sample.
    """
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval!r}")
    loop = asyncio.get_running_loop()
    next_at = loop.time() + interval
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        try:
            pids = dict(get_worker_pids())
            sample = await asyncio.to_thread(sampler.sample, pids)
            on_sample(sample)
        except Exception:
            log.exception("system usage sample failed")
        next_at += interval
        now = loop.time()
        if next_at < now:
            next_at = now + interval - (now - next_at) % interval
