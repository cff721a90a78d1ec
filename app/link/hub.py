"""Client of the central hub (docs/protocol.md §3): register, heartbeat, deregister.

The hub is a convenience for operators, not a dependency of capture: while it is away
the client keeps working and keeps knocking, through the project's one backoff policy so
that a hub restart is not met by every desk reconnecting at once. The hub keeps no state
across restarts, so a heartbeat it answers with 404 simply means "register again".

Failures are logged when the situation changes, not per attempt: a hub that is down
for a night costs one warning, not thousands.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import httpx

from app import __version__
from app.backoff import Backoff, BackoffPolicy
from app.clock import SYSTEM_CLOCK, Clock
from app.link.bodies import MAX_HUB_BODY, BodyRefusedError, bounded_request, parse_json
from app.link.gateway import (
    DEFAULT_TIMEOUT,
    checked_base_url,
    describe_request_error,
)
from app.logfiles import demote_traffic_logs
from app.security.secret import Secret

_log = logging.getLogger(__name__)

#: Deregistering happens on the way out; a hub that is away must not hold up shutdown.
DEREGISTER_TIMEOUT: Final = 2.0


def authorization(credential: Secret | None) -> dict[str, str]:
    """The ``Authorization`` header of a backend credential: ``user:password`` goes as
    Basic, a token as Bearer (docs/protocol.md)."""
    if credential is None:
        return {}
    text = credential.reveal()
    if ":" in text:
        return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}
    return {"Authorization": "Bearer " + text}


@dataclass(frozen=True, slots=True)
class HubState:
    """What the hub client knows, as one consistent snapshot for a status display.

    ``registered`` is the client's belief that the hub holds its registration; it stays
    true while heartbeats fail (the hub may only be unreachable) until a 404 proves the
    hub forgot it. ``last_error`` is empty when the last exchange succeeded.
    """

    registered: bool = False
    last_error: str = ""
    #: Epoch seconds of the last successful exchange; 0 when there was none.
    last_ok: float = 0.0
    attempts: int = 0
    failures: int = 0
    registrations: int = 0
    #: The interval in force: the hub's answer to ``register`` overrides the requested one.
    heartbeat_interval: float = 0.0


class _ExchangeError(Exception):
    """One exchange with the hub went wrong; the text is what ``last_error`` shows."""


class HubClient:
    """Keeps one service registered with the hub while :meth:`run` runs.

    Stopping (:meth:`stop`, :meth:`aclose`, leaving ``async with``, or cancelling the
    task running :meth:`run`) deregisters once, best effort within
    :data:`DEREGISTER_TIMEOUT` (or ``timeout`` if shorter), then closes the HTTP client
    if this object created it. A client cannot be restarted after that.
    """

    def __init__(
        self,
        base_url: str,
        service_id: str,
        *,
        name: str = "trading-client",
        version: str = __version__,
        capabilities: Sequence[str] = (),
        heartbeat_interval: float = 5.0,
        policy: BackoffPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = SYSTEM_CLOCK,
        credential: Secret | None = None,
    ) -> None:
        if not service_id:
            raise ValueError("service_id must not be empty")
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be > 0")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._base = checked_base_url(base_url)
        self._service_id = service_id
        self._id_path = quote(service_id, safe="")
        self._registration: dict[str, Any] = {
            "service_id": service_id,
            "name": name,
            "version": version,
            "capabilities": list(capabilities),
            "heartbeat_interval": heartbeat_interval,
        }
        self._timeout = timeout
        self._clock = clock
        self._credential = credential
        self._backoff = Backoff(policy or BackoffPolicy())
        self._owns_http = http is None
        demote_traffic_logs()  # a request line per heartbeat is not an event
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._state = HubState(heartbeat_interval=heartbeat_interval)
        self._task: asyncio.Task[Any] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"HubClient(base_url={self._base!r}, service_id={self._service_id!r}, "
            f"registered={self._state.registered})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def state(self) -> HubState:
        return self._state

    @property
    def service_id(self) -> str:
        return self._service_id

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Register, then heartbeat, until cancelled; never returns otherwise."""
        if self._closed:
            raise RuntimeError("HubClient is closed")
        if self._task is not None:
            raise RuntimeError("HubClient.run is already running")
        self._task = asyncio.current_task()
        try:
            while True:
                await asyncio.sleep(await self._step())
        finally:
            await self._shutdown()

    async def stop(self) -> None:
        """Stop :meth:`run` (if it runs), deregister once, close; idempotent."""
        task = self._task
        if task is not None and task is not asyncio.current_task():
            if not self._closed:  # else it is already deregistering: let it finish
                task.cancel()
            await asyncio.wait([task])
        await self._shutdown()

    async def aclose(self) -> None:
        await self.stop()

    # ------------------------------------------------------------------ exchanges
    async def _step(self) -> float:
        """One exchange with the hub; returns the pause before the next one."""
        if not self._state.registered:
            return await self._register()
        return await self._heartbeat()

    async def _register(self) -> float:
        try:
            _, body = await self._call("POST", "/api/services/register", self._registration)
            if not isinstance(body, dict) or body.get("registered") is not True:
                raise _ExchangeError(
                    f"POST {self._base}/api/services/register: "
                    'answer has the wrong shape (no "registered": true)'
                )
        except _ExchangeError as exc:
            return self._failed(str(exc))
        interval = body.get("heartbeat_interval")
        if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
            self._state = replace(self._state, heartbeat_interval=float(interval))
        self._succeeded(registered=True, registrations=self._state.registrations + 1)
        _log.info(
            "registered %r with hub %s (heartbeat every %g s)",
            self._service_id,
            self._base,
            self._state.heartbeat_interval,
        )
        return self._state.heartbeat_interval

    async def _heartbeat(self) -> float:
        path = f"/api/services/{self._id_path}/heartbeat"
        try:
            status, body = await self._call("POST", path, None, tolerate=(404,))
            if status == 404:
                _log.info(
                    "hub %s forgot %r (restarted?); registering again",
                    self._base,
                    self._service_id,
                )
                self._state = replace(self._state, registered=False)
                return 0.0
            if not isinstance(body, dict) or body.get("ok") is not True:
                raise _ExchangeError(
                    f'POST {self._base}{path}: answer has the wrong shape (no "ok": true)'
                )
        except _ExchangeError as exc:
            return self._failed(str(exc))
        if self._state.last_error:
            _log.info("heartbeats to hub %s work again", self._base)
        self._succeeded()
        return self._state.heartbeat_interval

    async def _call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        *,
        tolerate: Sequence[int] = (),
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        """Send one request; any answer but a 2xx JSON one (or a tolerated status) fails."""
        timeout = self._timeout if timeout is None else timeout
        where = f"{method} {self._base}{path}"
        self._state = replace(self._state, attempts=self._state.attempts + 1)
        try:
            resp = await bounded_request(
                self._http,
                method,
                self._base + path,
                limit=MAX_HUB_BODY,
                json=payload,
                timeout=timeout,
                headers=authorization(self._credential),
            )
        except BodyRefusedError as exc:
            raise _ExchangeError(f"{where}: {exc}") from None
        except httpx.RequestError as exc:
            raise _ExchangeError(f"{where}: {describe_request_error(exc, timeout)}") from exc
        if resp.status_code in tolerate:
            return resp.status_code, None
        if not resp.is_success:
            raise _ExchangeError(f"{where}: HTTP {resp.status_code} {resp.reason_phrase}".rstrip())
        try:
            return resp.status_code, parse_json(resp)
        except ValueError as exc:
            raise _ExchangeError(
                f"{where}: HTTP {resp.status_code}, answer refused: {exc}"
            ) from None

    def _failed(self, error: str) -> float:
        if error != self._state.last_error:
            _log.warning("hub exchange failed: %s; retrying with backoff", error)
        self._state = replace(self._state, last_error=error, failures=self._state.failures + 1)
        return self._backoff.next_delay()

    def _succeeded(self, **changes: Any) -> None:
        self._backoff.reset()
        self._state = replace(self._state, last_error="", last_ok=self._clock.time(), **changes)

    async def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._state.registered:
                await self._deregister()
        finally:
            if self._owns_http:
                await self._http.aclose()

    async def _deregister(self) -> None:
        path = f"/api/services/{self._id_path}"
        try:
            await self._call(
                "DELETE",
                path,
                None,
                tolerate=(404,),
                timeout=min(self._timeout, DEREGISTER_TIMEOUT),
            )
        except _ExchangeError as exc:
            _log.info("could not deregister from hub: %s", exc)
        else:
            _log.info("deregistered %r from hub %s", self._service_id, self._base)
        self._state = replace(self._state, registered=False)
