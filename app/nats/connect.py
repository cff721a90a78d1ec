"""How the client reaches NATS: the servers of the settings, tried in turn, one connection.

Why no reconnect inside nats-py: the sink owns reconnection (app/backoff.py, like every
link) and must know exactly when a connection ends, to resend every unacknowledged
message on the next one. So the client library is told never to reconnect; each server of
``backend.nats_url`` is tried in order, starting after the one that failed last.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client

from app.config import BackendConfig
from app.config.nats_schema import nats_servers
from app.nats.subjects import StreamSpec
from app.security.secret import Secret

log = logging.getLogger(__name__)

__all__ = ["NatsOptions", "open_connection"]


@dataclass(frozen=True, slots=True)
class NatsOptions:
    """Where and how the sink publishes (built from ``backend`` by the runtime)."""

    servers: tuple[str, ...]
    stream: StreamSpec = field(default_factory=StreamSpec)
    ack_timeout: float = 5.0
    max_in_flight: int = 256
    connect_timeout: float = 5.0
    username: str | None = None
    #: The user's password, or a token (without a user), from the credential vault.
    password: Secret | None = None
    token: Secret | None = None
    #: For ``tls://`` servers (the project's TLS context: CA bundle, pins, min version).
    tls: ssl.SSLContext | None = None

    @classmethod
    def from_config(
        cls,
        config: BackendConfig,
        stream: StreamSpec,
        *,
        password: Secret | None = None,
        token: Secret | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> NatsOptions:
        return cls(
            tuple(nats_servers(config.nats_url)),
            stream,
            config.nats_ack_timeout_s,
            config.nats_max_in_flight,
            username=config.nats_username,
            password=password,
            token=token,
            tls=tls,
        )


Callback = Callable[[], Awaitable[None]]


async def open_connection(
    options: NatsOptions, *, first: int = 0, on_closed: Callback | None = None
) -> tuple[Client, int]:
    """A connection to the first server that answers, trying them from index ``first``;
    returns it and that server's index. ``OSError`` names every failure, in one line."""
    failures: list[str] = []
    servers = options.servers
    for k in range(len(servers)):
        index = (first + k) % len(servers)
        url = servers[index]
        try:
            client = await nats.connect(
                servers=[url],
                allow_reconnect=False,
                # nats-py retries a server inside connect() (60 times, 2 s apart, by
                # default): here a dead one is given up after one retry, at once.
                max_reconnect_attempts=1,
                reconnect_time_wait=0.0,
                connect_timeout=options.connect_timeout,
                user=options.username if options.password is not None else None,
                password=options.password.reveal() if options.password is not None else None,
                token=options.token.reveal() if options.token is not None else None,
                tls=options.tls if url.lower().startswith("tls://") else None,
                error_cb=_quiet,
                disconnected_cb=on_closed,
                closed_cb=on_closed,
                name="trading-client",
            )
        except Exception as exc:  # nats-py raises assorted types; each is one line
            failures.append(f"{url}: {type(exc).__name__}{': ' + str(exc) if str(exc) else ''}")
            continue
        return client, index
    raise OSError("no NATS server answered (" + "; ".join(failures) + ")")


async def _quiet(exc: Exception) -> None:
    """nats-py's errors end the session through ``closed_cb``; log them at debug only."""
    log.debug("nats client: %s", exc)
