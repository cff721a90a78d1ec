"""The monitor: measured throughput, latency and system usage, turned into alerts.

Recording sits on the hot path (one call per collector batch, one per acked message),
so it only bumps counters and records one latency; everything else happens once per
second in :meth:`Monitor.tick`: rates over sliding windows, percentiles of the last
second, the metrics history the charts read, and the alert rules.

Latency definitions (seconds, wall clock):

* ``tick_to_collector`` — from the time of the *oldest* tick of a batch (its
  ``time_msc``) to the moment the collector sequenced the batch: the worst latency in
  that batch, recorded once per batch;
  ticks from before the worker streamed (the catch-up of its first poll: ticks the
  terminal had before the worker was up) count from the moment it started streaming,
  so start-up reads as the seconds of start-up once, not as a 2,000 ms tick latency;
* ``collector_to_ack`` — from the capture of a message's oldest batch to the bridge's
  ack of that message, once per message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from app.clock import SYSTEM_CLOCK, Clock
from app.collector import SequencedBatch
from app.connector import WorkerHealth, WorkerState
from app.link.link import LinkState
from app.monitor.alerts import AlertEngine, MetricValue, Rule, default_rules
from app.monitor.histogram import LatencyHistogram
from app.monitor.history import SeriesHistory
from app.monitor.rates import RateBook
from app.monitor.system import SystemSample
from app.sessions import MarketHours

LATENCIES = ("tick_to_collector", "collector_to_ack")


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the runtime hands the monitor each second, besides the recorded events."""

    workers: Sequence[WorkerHealth]
    link: LinkState | None
    queue_depth: int
    last_tick_msc: Mapping[str, int]
    system: SystemSample | None = None
    #: Free bytes on the disk of each spool folder (the link's durable spool).
    spool_free_bytes: Mapping[str, int] = field(default_factory=dict)
    #: Which markets are open; None: all of them, always.
    market_hours: MarketHours | None = None


def _quiet_in_session(hours: MarketHours | None, symbol: str, msc: int, now: float) -> float | None:
    """Seconds *inside the trading session* without a tick: a closed market is quiet by
    design (0, so a raised "no tick" alert resolves at the close), and after the open
    the silence counts from the open, not from Friday's last tick."""
    if not msc:
        return None
    since = msc / 1000
    if hours is not None:
        if not hours.is_open(symbol, now):
            return 0.0
        opened = hours.open_since(symbol, now)
        if opened is not None:
            since = max(since, float(opened))
    return max(0.0, now - since)


class Monitor:
    def __init__(
        self,
        rules: Iterable[Rule] | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        reraise_after: float = 300.0,
    ) -> None:
        self._clock = clock
        self._symbol_counts: dict[str, int] = {}
        self._worker_counts: dict[int, int] = {}
        self._interval = {name: LatencyHistogram() for name in LATENCIES}
        self.latency = {name: LatencyHistogram() for name in LATENCIES}
        self.rates = RateBook(clock=clock, resolution=1.0)
        self.history = SeriesHistory(clock=clock)
        self.alerts = AlertEngine(
            default_rules() if rules is None else rules, clock, reraise_after=reraise_after
        )
        self.metrics: dict[str, MetricValue] = {}
        self.peaks: dict[str, float] = {}
        self._last_tick_at = clock.monotonic()
        self._started = clock.time()
        #: Per worker, when its current process began streaming (wall clock): from the
        #: health's uptime once a second, else the capture time of its first batch.
        self._worker_since: dict[int, float] = {}

    # ------------------------------------------------------------------ hot path
    def on_batch(self, item: SequencedBatch) -> None:
        """Collector subscriber: one dict update per counter and one latency record."""
        batch = item.batch
        n = len(batch.ticks)
        sc = self._symbol_counts
        sc[batch.symbol] = sc.get(batch.symbol, 0) + n
        wc = self._worker_counts
        wc[batch.worker_id] = wc.get(batch.worker_id, 0) + n
        if item.history:
            return  # backfilled ticks are old by design: their age is no latency
        since = self._worker_since.get(batch.worker_id)
        if since is None:
            since = batch.captured_at or item.received_at
            self._worker_since[batch.worker_id] = since
        oldest = int(batch.ticks["time_msc"][0]) / 1000
        self._interval["tick_to_collector"].record(item.received_at - max(oldest, since))

    def on_ack(self, ack_time: float, captured_at: float, times: npt.NDArray[np.int64]) -> None:
        """Bridge-link latency sink: one record per acked message."""
        self._interval["collector_to_ack"].record(ack_time - captured_at)

    # ------------------------------------------------------------------ once a second
    def tick(self, inputs: Inputs) -> dict[str, MetricValue]:
        """Fold the last second into rates, percentiles, history and alert state."""
        now_mono = self._clock.monotonic()
        elapsed = max(now_mono - self._last_tick_at, 1e-6)
        self._last_tick_at = now_mono
        now = self._clock.time()
        m: dict[str, MetricValue] = {}
        for w in inputs.workers:
            if w.uptime > 0:  # a restarted process catches up from its own start
                self._worker_since[w.worker_id] = now - w.uptime

        total = 0
        for symbol, n in self._symbol_counts.items():
            self.rates.add(f"symbol.{symbol}", n)
            m[f"tps.symbol.{symbol}"] = n / elapsed
            total += n
        for worker_id, n in self._worker_counts.items():
            self.rates.add(f"worker.{worker_id}", n)
            m[f"tps.worker.{worker_id}"] = n / elapsed
        self.rates.add("total", total)
        self._symbol_counts = dict.fromkeys(self._symbol_counts, 0)
        self._worker_counts = dict.fromkeys(self._worker_counts, 0)
        m["tps.total"] = total / elapsed
        # The total held against the "TPS low" threshold only while every captured market
        # is open: at the weekend a 24/7 symbol alone is not a throughput problem.
        closed = inputs.market_hours.closed(now) if inputs.market_hours is not None else ()
        m["tps.total.all_markets_open"] = None if closed else m["tps.total"]
        for window in self.rates.windows:
            m[f"tps.total.{window:g}s"] = self.rates.rate("total", window)

        for name in LATENCIES:
            interval = self._interval[name]
            if interval.count:
                p50, p99 = interval.percentiles([50, 99])
                m[f"latency.{name}.p50"] = p50
                m[f"latency.{name}.p99"] = p99
                m[f"latency.{name}.max"] = interval.max
            else:
                m[f"latency.{name}.p99"] = None  # nothing happened: neither good nor bad
            self.latency[name].merge(interval)
            interval.reset()

        for w in inputs.workers:
            m[f"worker_failed.{w.worker_id}"] = w.state is WorkerState.FAILED
            m[f"terminal_offline.{w.worker_id}"] = w.state is WorkerState.OFFLINE
            m[f"worker.{w.worker_id}.reconnects"] = w.reconnects
        m["pool.reconnects"] = sum(w.reconnects for w in inputs.workers)
        m["pool.streaming"] = sum(w.state is WorkerState.STREAMING for w in inputs.workers)
        m["queue.depth"] = inputs.queue_depth
        hours = inputs.market_hours
        for symbol, msc in inputs.last_tick_msc.items():
            m[f"seconds_since_tick.{symbol}"] = _quiet_in_session(hours, symbol, msc, now)

        link = inputs.link
        if link is not None:
            m["link.down"] = not link.connected
            m["link.spool_fill"] = link.spool_fill
            m["link.backlog_ticks"] = link.backlog_ticks
            m["link.backlog_batches"] = link.backlog_batches
            m["link.rtt"] = link.rtt
            m["link.reconnects"] = link.reconnects
            m["link.spool_write_failed"] = bool(link.spool_disk_error)
        for folder, free in inputs.spool_free_bytes.items():
            m[f"spool_disk_free_mb.{folder}"] = free / 2**20
        if inputs.system is not None:
            m.update(inputs.system.as_metrics())

        for name, value in m.items():
            if isinstance(value, bool) or value is None:
                continue
            self.history.record(name, float(value), now)
            if value > self.peaks.get(name, float("-inf")):
                self.peaks[name] = float(value)
        self.metrics = m
        self.alerts.evaluate(m)
        return m

    # ------------------------------------------------------------------ reporting
    def summary(self) -> dict[str, Any]:
        """Totals, rates, percentiles, peaks and alerts of the whole run (``--stats``)."""
        totals = self.rates.totals()
        duration = max(self._clock.time() - self._started, 1e-9)
        latency: dict[str, dict[str, float | int]] = {}
        for name, hist in self.latency.items():
            if hist.count:
                p50, p99, p999 = hist.percentiles([50, 99, 99.9])
                latency[name] = {
                    "count": hist.count,
                    "p50_ms": p50 * 1000,
                    "p99_ms": p99 * 1000,
                    "p99_9_ms": p999 * 1000,
                    "max_ms": hist.max * 1000,
                    "mean_ms": hist.mean * 1000,
                }
        return {
            "duration_s": duration,
            "ticks_total": totals.get("total", 0),
            "ticks_per_symbol": {
                k.removeprefix("symbol."): v for k, v in totals.items() if k.startswith("symbol.")
            },
            "mean_ticks_per_s": totals.get("total", 0) / duration,
            "latency": latency,
            "peaks": {k: v for k, v in self.peaks.items() if not k.startswith("worker.")},
            "alerts": [
                {
                    "event": e.kind.value,
                    "at": e.at,
                    "id": e.alert.id,
                    "severity": e.alert.severity.value,
                    "message": e.alert.message,
                    "value": e.alert.value,
                    "threshold": e.alert.threshold,
                }
                for e in self.alerts.history()
            ],
        }
