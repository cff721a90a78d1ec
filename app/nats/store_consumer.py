"""The consumer that stores: a durable JetStream pull consumer writing into the bridge's database.

Why pull and durable: several ``trading-client store`` processes bound to one durable
share the work (JetStream hands each fetched message to one of them), and a consumer
that was down resumes where the durable's acks left it. Why commit THEN ack: a crash
after the commit and before the acks only makes JetStream redeliver messages whose rows
are there already, and :meth:`app.server.store.TickStore.store_blocks` drops them by
their (client, session, seq, idx) key — so every block is stored exactly once; an ack
before the commit could lose a block for good.

Foreign messages (see :mod:`app.nats.store_rules`) are terminated, never redelivered:
one bad publisher must not stall the stream. Connection trouble (a node killed, a leader
election) is retried with the project's backoff; only the database failing is fatal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from app.backoff import BackoffPolicy
from app.nats.retry import TRANSIENT, raise_if_cancelling
from app.nats.store_rules import Foreign, RateMeter, Tally, classify
from app.nats.subjects import TICKS_ROOT
from app.security.secret import Secret
from app.server.store import KeyedBlock, KeyedLost, TickStore

log = logging.getLogger(__name__)


class StoreSetupError(RuntimeError):
    """The consumer cannot start (no server, no stream, bad config): one line for the user."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """What ``trading-client store`` was told; ``ack_wait_s`` bounds how long a killed
    consumer's fetched messages wait before another instance gets them."""

    servers: tuple[str, ...]
    db: Path
    stream: str = "TICKS"
    durable: str = "store"
    batch: int = 256
    ack_wait_s: float = 30.0
    max_ack_pending: int = 20_000
    fetch_timeout_s: float = 1.0
    connect_timeout_s: float = 10.0
    progress_interval_s: float = 1.0
    synchronous: str = "FULL"
    user: str | None = None
    password: Secret | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress report: the totals so far, the recent rate and the stream lag."""

    tally: Tally
    rate: float
    lag: int | None


async def connect(config: StoreConfig) -> Client:
    """A connection to any of ``servers`` within ``connect_timeout_s``, reconnecting forever
    after that (a node killed later is ridden out, not fatal)."""

    last: list[Exception] = []

    async def quiet(exc: Exception) -> None:
        log.debug("nats: %s", exc)
        last[:] = [exc]

    options: dict[str, object] = {}
    if config.user:
        options["user"] = config.user
        options["password"] = config.password.reveal() if config.password else ""
    try:
        return await asyncio.wait_for(
            nats.connect(
                servers=list(config.servers),
                connect_timeout=min(2.0, config.connect_timeout_s),
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.2,
                error_cb=quiet,
                **options,
            ),
            config.connect_timeout_s,
        )
    except (TimeoutError, *TRANSIENT) as exc:
        cause = last[0] if last else exc  # e.g. an authorization violation, not "timeout"
        detail = str(cause).strip() or type(cause).__name__
        raise StoreSetupError(
            f"no NATS server reachable at {','.join(config.servers)} within "
            f"{config.connect_timeout_s:g} s ({detail})"
        ) from None


class StoreConsumer:
    """Fetch a batch → classify → store in one transaction → ack each message."""

    def __init__(
        self,
        config: StoreConfig,
        store: TickStore,
        *,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.tally = Tally()
        self.lag: int | None = None
        self._on_progress = on_progress
        self._backoff = BackoffPolicy(initial=0.1, maximum=2.0)

    async def _subscribe(self, nc: Client) -> nats.js.JetStreamContext.PullSubscription:
        js = nc.jetstream()
        cfg = self.config
        deadline = time.monotonic() + cfg.connect_timeout_s
        attempt = 0
        while True:
            try:
                await js.stream_info(cfg.stream)
                return await js.pull_subscribe(
                    f"{TICKS_ROOT}.>",
                    durable=cfg.durable,
                    stream=cfg.stream,
                    config=api.ConsumerConfig(
                        ack_policy=api.AckPolicy.EXPLICIT,
                        deliver_policy=api.DeliverPolicy.ALL,
                        ack_wait=cfg.ack_wait_s,
                        max_ack_pending=cfg.max_ack_pending,
                    ),
                )
            except nats.js.errors.NotFoundError:
                raise StoreSetupError(
                    f"no stream {cfg.stream!r} on the cluster (publishers create it; "
                    "check --stream)"
                ) from None
            except nats.js.errors.BadRequestError as exc:
                raise StoreSetupError(f"the cluster refused the consumer: {exc}") from None
            except TRANSIENT as exc:
                raise_if_cancelling()
                if time.monotonic() > deadline:
                    raise StoreSetupError(
                        f"stream {cfg.stream!r} not available within "
                        f"{cfg.connect_timeout_s:g} s ({exc or type(exc).__name__})"
                    ) from None
                await asyncio.sleep(self._backoff.delay(attempt))
                attempt += 1

    async def run(self, *, until_idle: bool = False, stop: asyncio.Event | None = None) -> Tally:
        """Store until ``stop`` is set, or (``until_idle``) until nothing is left to store."""
        nc = await connect(self.config)
        try:
            sub = await self._subscribe(nc)
            await self._loop(nc, sub, until_idle, stop or asyncio.Event())
        finally:
            await nc.close()
        return self.tally

    async def _loop(
        self,
        nc: Client,
        sub: nats.js.JetStreamContext.PullSubscription,
        until_idle: bool,
        stop: asyncio.Event,
    ) -> None:
        js = nc.jetstream()
        cfg = self.config
        meter = RateMeter(time.monotonic())
        next_report = time.monotonic() + cfg.progress_interval_s
        failures = 0
        while not stop.is_set():
            try:
                msgs = await sub.fetch(cfg.batch, timeout=cfg.fetch_timeout_s)
            except nats.errors.TimeoutError:
                raise_if_cancelling()
                msgs = []
            except TRANSIENT as exc:
                raise_if_cancelling()
                log.debug("fetch failed, retrying: %s", exc)
                await asyncio.sleep(self._backoff.delay(failures))
                failures += 1
                continue
            failures = 0
            if msgs:
                await self._handle(msgs)
            now = time.monotonic()
            # A short batch may mean caught up: ask now rather than after an empty fetch's
            # timeout (the acks flushed first, so the answer counts them).
            idle_check = until_idle and len(msgs) < cfg.batch
            if idle_check:
                try:
                    await nc.flush(timeout=max(1, round(cfg.fetch_timeout_s)))
                except TRANSIENT:
                    raise_if_cancelling()
                    idle_check = False
            if now >= next_report or idle_check:
                self.lag = await self._lag(js, until_idle=idle_check)
                if idle_check and self.lag == 0:
                    return
                if now >= next_report:
                    next_report = now + cfg.progress_interval_s
                    if self._on_progress:
                        rate = meter.rate(now, self.tally.stored_ticks)
                        self._on_progress(Progress(self.tally, rate, self.lag))

    async def _lag(self, js: nats.js.JetStreamContext, *, until_idle: bool) -> int | None:
        """Messages the durable has not delivered yet — plus, when deciding whether it is
        idle, those delivered and not acked (a killed instance's batch waits for ack_wait)."""
        try:
            info = await js.consumer_info(self.config.stream, self.config.durable)
        except TRANSIENT:
            raise_if_cancelling()
            return None
        pending = info.num_pending or 0
        return pending + (info.num_ack_pending or 0) if until_idle else pending

    async def _handle(self, msgs: list[Msg]) -> None:
        blocks: list[KeyedBlock] = []
        lost: list[KeyedLost] = []
        keep: list[Msg] = []
        tally = self.tally
        for msg in msgs:
            if msg.metadata.num_delivered > 1:
                tally.redelivered += 1
            item = classify(msg.headers, msg.data)
            if isinstance(item, Foreign):
                if tally.note_foreign(item):
                    log.warning(
                        "not a trading client's block on %s (%s): %s; terminated, and further "
                        "messages of this kind are only counted",
                        msg.subject,
                        item.kind,
                        item.detail,
                    )
                await msg.term()
                continue
            if isinstance(item, KeyedLost):
                lost.append(item)
            else:
                blocks.append(item)
            keep.append(msg)
        if keep:
            stored = await asyncio.to_thread(self.store.store_blocks, blocks, lost)
            tally.stored_blocks += stored.blocks
            tally.stored_ticks += stored.ticks
            tally.duplicates += stored.duplicates
            tally.lost += stored.lost
            for msg in keep:  # only now: a crash before this line redelivers, dropped as dups
                await msg.ack()
            tally.acked += len(keep)
