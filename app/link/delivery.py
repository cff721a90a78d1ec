"""Which links deliver the sequenced ticks (``backend.sink``), each over its own spool.

Why a module of its own: the runtime only wants "the links, their intake gate, and what
earlier runs left"; how a link is chosen and built — the bridge's WebSocket, the NATS
sink, or both fed the same batches — and where each one's durable spool lives is decided
here. With ``both`` each link has an independent spool (``<root>/<client>`` and
``<root>/<client>-nats``), so one being down never holds the other's acks back, and the
collector takes a batch only while *both* have room: nothing is dropped for either.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nats
import platformdirs

from app.config import BackendConfig
from app.config.nats_schema import nats_servers
from app.config.schema import SecurityConfig
from app.link.adapter import LinkAdapter, LinkOptions
from app.link.spool import Spool, find_leftovers
from app.nats.connect import NatsOptions, open_connection
from app.nats.stream import ensure_stream, stream_spec
from app.security.connections import PinFailureHook, tls_context_for, tls_settings
from app.security.secret import Secret

log = logging.getLogger(__name__)

__all__ = [
    "Delivery",
    "check_stream_at_start",
    "drain_at_stop",
    "drain_leftover",
    "link_options",
    "nats_options",
    "open_spool",
    "spool_root",
]

Kind = Literal["bridge", "nats"]


def link_options(config: BackendConfig, ssl_context: ssl.SSLContext | None = None) -> LinkOptions:
    return LinkOptions(
        batch_max_ticks=config.batch_max_ticks,
        linger=config.linger_ms / 1000,
        window=config.window,
        compression=config.compression,
        ping_interval=config.ping_interval_s,
        ping_timeout=config.ping_timeout_s,
        policy=config.backoff.policy(),
        ssl_context=ssl_context,
    )


def spool_root(config: BackendConfig, client_id: str, kind: Kind = "bridge") -> Path:
    """The folder of this client's spool sessions of one link (one sub-folder per session)."""
    base = config.spool_dir or platformdirs.user_cache_path("trading-client") / "spool"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in client_id)
    return base / (safe if kind == "bridge" else f"{safe}-{kind}")


def open_spool(cfg: BackendConfig, root: Path, client_id: str) -> tuple[Spool, list[Path]]:
    """This run's spool under ``root``, and the other leftovers to drain aside.

    An earlier run's newest leftover is resumed (same session and seqs, so the peer
    de-duplicates what it already stored), else a new session starts."""
    memory, disk = cfg.spool_memory_mb * 2**20, cfg.spool_disk_mb * 2**20
    leftovers = find_leftovers(root, client_id)
    if disk == 0:  # memory only now: what earlier runs left is still delivered
        return Spool(memory, 0, None, client_id=client_id, session=uuid.uuid4().hex), leftovers
    if leftovers:
        spool = Spool(memory, disk, leftovers[-1], client_id=client_id)
        log.warning(
            "resuming session %s of an earlier run (%s): %d messages (%d ticks) not yet "
            "acknowledged go first",
            spool.session,
            root.name,
            len(spool),
            spool.ticks,
        )
        return spool, leftovers[:-1]
    session = uuid.uuid4().hex
    return Spool(memory, disk, root / session, client_id=client_id, session=session), []


def drain_leftover(link: LinkAdapter, spool: Spool) -> Coroutine[Any, Any, None]:
    """Deliver another crashed run's spool on a link of its own (``intake=False``), then
    close it: a coroutine for the runtime's task list."""
    log.warning(
        "%s: draining session %s of an earlier run: %d messages",
        link.name,
        spool.session,
        len(spool),
    )

    async def drain() -> None:
        task = asyncio.create_task(link.run(), name=f"link-drain-{spool.session}")
        try:
            while not link.all_acked():
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await link.close()
            spool.close()

    return drain()


#: How long stopping waits for a link to be acked what was captured.
DRAIN_TIMEOUT = 10.0


async def drain_at_stop(link: LinkAdapter, spool: Spool) -> None:
    """Wait for ``link``'s acks; a durable spool keeps what is not acked for the next
    run, so waiting for an unreachable peer would only delay the quit."""
    durable = spool.disk_limit_bytes > 0
    timeout = DRAIN_TIMEOUT if link.connected or not durable else 0.0
    if not await link.drain(timeout):
        state = link.state
        log.warning(
            "stopping with %d ticks the %s has not acknowledged (%s): %s",
            state.backlog_ticks,
            link.name,
            state.last_error or "peer slow",
            "kept in the spool for the next run"
            if durable
            else "lost: the spool has no disk (backend.spool_disk_mb = 0)",
        )


def nats_options(
    cfg: BackendConfig,
    security: SecurityConfig,
    secret: Secret | None,
    on_pin_failure: PinFailureHook,
) -> NatsOptions:
    """The sink's options from the settings: the vault's secret is the user's password
    (or a token without a user); ``tls://`` servers get the project's TLS context (CA
    bundle, pins, minimum version) and plain ``nats://`` to another machine is refused
    unless ``security.plaintext_allowed`` lists it, as for every endpoint."""
    tls = tls_settings(security)
    contexts = [
        # The one TLS factory judges by scheme: tls:// is to NATS what wss:// is to ws.
        tls_context_for(
            ("wss" if url.lower().startswith("tls://") else "ws") + url[url.index(":") :],
            tls,
            on_pin_failure,
            plaintext_allowed=security.plaintext_allowed,
        )
        for url in nats_servers(cfg.nats_url)
    ]
    user = cfg.nats_username
    return NatsOptions.from_config(
        cfg,
        stream_spec(cfg),
        password=secret if user else None,
        token=None if user else secret,
        tls=next((c for c in contexts if c is not None), None),
    )


async def check_stream_at_start(options: NatsOptions, timeout: float) -> None:
    """Create or check the stream before capture starts, so that a stream the cluster
    refuses (or that cannot match the settings) stops the start with one line
    (:class:`~app.nats.stream.StreamRefusedError`). An unreachable cluster does not: the
    sink spools and checks the stream again on every connection."""
    try:
        client, _ = await asyncio.wait_for(open_connection(options), timeout)
    except (OSError, TimeoutError) as exc:
        log.warning("NATS not reachable at start (%s): ticks wait in the spool", exc)
        return
    try:
        js = client.jetstream(timeout=options.ack_timeout)
        done = await asyncio.wait_for(ensure_stream(js, options.stream), timeout)
        log.info("NATS stream %s: %s", options.stream.name, done)
    except (TimeoutError, nats.errors.Error) as exc:  # StreamRefusedError goes through
        log.warning("NATS stream %s not checked at start (%s)", options.stream.name, exc)
    finally:
        await client.close()


@dataclass
class Delivery:
    """The links of this run, primary first (the one the window and the summary show),
    and the collector's intake gate: set while every link has room."""

    links: list[LinkAdapter] = field(default_factory=list)
    spools: list[Spool] = field(default_factory=list)
    room: asyncio.Event = field(default_factory=asyncio.Event)

    def add(
        self,
        link: LinkAdapter,
        spool: Spool,
        leftovers: list[Path],
        drainer: Callable[[Spool], LinkAdapter],
        cfg: BackendConfig,
    ) -> list[asyncio.Task[None]]:
        """Gate intake on ``link`` too; returns the tasks draining ``leftovers`` (earlier
        runs' spools of this link, each on a link ``drainer`` makes)."""
        self.links.append(link)
        self.spools.append(spool)
        link.watch_room(self._sync)
        self._sync()
        return self.drain_leftovers(leftovers, drainer, cfg)

    @staticmethod
    def drain_leftovers(
        leftovers: list[Path], drainer: Callable[[Spool], LinkAdapter], cfg: BackendConfig
    ) -> list[asyncio.Task[None]]:
        """Earlier runs' spools, each drained on a link ``drainer`` makes: the tasks."""
        tasks = []
        for path in leftovers:
            # It never takes new messages, so its disk limit only has to hold what is there.
            old = Spool(cfg.spool_memory_mb * 2**20, 2**50, path)
            tasks.append(asyncio.create_task(drain_leftover(drainer(old), old), name="link-drain"))
        return tasks

    def _sync(self) -> None:
        if all(link.room.is_set() for link in self.links):
            self.room.set()
        else:
            self.room.clear()

    @property
    def primary(self) -> LinkAdapter | None:
        return self.links[0] if self.links else None
