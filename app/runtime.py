"""Builds the services from a config and runs them in order on one asyncio loop.

The headless ``run`` command and the desktop window both drive a :class:`Runtime`; the
window only renders what :meth:`Runtime.status` and the collector expose.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from app.clock import SYSTEM_CLOCK, Clock
from app.collector import Collector
from app.config import ClientConfig
from app.connector import ConnectorPool, WorkerHealth, WorkerSpec, spread_symbols
from app.ticks import TickBatch

log = logging.getLogger(__name__)

#: Batches that may wait between the pool and the collector before workers are held back.
QUEUE_BATCHES = 512


def plan_workers(
    config: ClientConfig, passwords: Mapping[str, str] | None = None
) -> list[WorkerSpec]:
    """Spread ``pool.size`` connections over the terminals, in proportion to their symbols.

    Every terminal gets at least one connection, and no connection is left without a
    symbol, so the pool may end up smaller than ``pool.size`` but never idle.
    """
    passwords = passwords or {}
    total = sum(len(t.symbols) for t in config.terminals)
    specs: list[WorkerSpec] = []
    for term in config.terminals:
        share = max(1, round(config.pool.size * len(term.symbols) / total))
        spec = term.to_spec(passwords.get(term.name))
        for group in spread_symbols(term.symbols, share):
            specs.append(
                WorkerSpec(
                    worker_id=len(specs) + 1,
                    terminal=spec,
                    symbols=group,
                    poll_interval=config.pool.poll_interval_ms / 1000,
                    max_batch=config.pool.max_batch,
                )
            )
    return specs


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    ticks: int
    batches: int
    workers: list[WorkerHealth]


class Runtime:
    def __init__(
        self,
        config: ClientConfig,
        *,
        passwords: Mapping[str, str] | None = None,
        start_msc: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.queue: asyncio.Queue[TickBatch] = asyncio.Queue(maxsize=QUEUE_BATCHES)
        self.collector = Collector(
            config.cache.ticks_per_symbol, bar_history=config.cache.bar_history, clock=clock
        )
        pool_cfg = config.pool
        self.pool = ConnectorPool(
            plan_workers(config, passwords),
            self.queue,
            policy=pool_cfg.backoff.policy(),
            stall_timeout=pool_cfg.stall_timeout_s,
            connect_timeout=pool_cfg.connect_timeout_s,
            start_msc=start_msc,
            clock=clock,
        )
        self._consumer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = asyncio.create_task(self.collector.consume(self.queue), name="collector")
        await self.pool.start()

    async def stop(self) -> None:
        """Stop capture, then let the collector take every batch already captured."""
        await self.pool.stop()
        await self.queue.join()
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)

    def status(self) -> RuntimeStatus:
        stats = self.collector.stats
        return RuntimeStatus(stats.ticks_total, stats.last_seq, self.pool.health())
