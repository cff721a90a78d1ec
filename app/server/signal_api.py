"""The gateway's signal endpoints: AI services post signals, anyone allowed reads them.

``POST /api/v1/signals`` takes one signal for the client it names, with the gateway's
own credentials (a bearer token from ``/api/auth/login``, Basic ``user:password``, or a
backend key): a service account is a user of the users file allowed that client id. The
body is decoded straight into the wire's :class:`~app.protocol.codec.Signal` (unknown
fields refused), judged by
:mod:`app.protocol.signal_rules`, stored (:mod:`app.server.signal_store`) and the
bridge is nudged to send it to the client now. Every refusal is one line:
400 (form or value rule), 403 (another user's client id), 409 (the id exists),
422 (already expired), 429 (too many signals wait for that client already).

``GET /api/v1/signals/{id}`` answers the signal with its state and the client's
outcome; ``GET /api/v1/signals?client_id=X`` lists that client's signals, newest first.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.protocol.codec import MAX_ID_LENGTH, Signal
from app.protocol.signal_rules import expired, signal_problem
from app.server.auth import Authenticator, forbidden
from app.server.httpjson import ApiError, authenticated, json_response, read_object, refusal
from app.server.signal_store import MAX_WAITING, SignalStore

log = logging.getLogger(__name__)

#: A signal without ``created_at_ms`` is created at its POST; without ``id`` it gets one.
SIGNALS_PATH = "/api/v1/signals"


#: The fields a POST may carry: the signal's own (one type for the concept, the wire's
#: :class:`~app.protocol.codec.Signal`) and the client it is for.
_POST_FIELDS = frozenset(Signal.__struct_fields__) | {"client_id"}


def signal_of_post(body: dict[str, Any], now_ms: int) -> tuple[str, Signal]:
    """``(client_id, signal)`` of a POST body; ApiError 400 naming the first problem of
    form (an unknown field, a missing or mistyped one). ``id`` defaults to a new one,
    ``created_at_ms`` to now."""
    unknown = sorted(body.keys() - _POST_FIELDS)
    if unknown or "type" in body:
        name = unknown[0] if unknown else "type"
        raise ApiError(400, "bad_request", f"unknown field `{name[:40]}`")
    client_id = body.pop("client_id", None)
    if not (
        isinstance(client_id, str)
        and 0 < len(client_id) <= MAX_ID_LENGTH
        and client_id.isprintable()
    ):
        raise ApiError(400, "bad_request", "'client_id' must be 1..200 printable characters")
    body.setdefault("id", uuid.uuid4().hex)
    body.setdefault("created_at_ms", now_ms)
    try:
        return client_id, msgspec.convert({**body, "type": "signal"}, Signal)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "bad_request", str(exc)[:200]) from None


class SignalApi:
    def __init__(
        self,
        store: SignalStore,
        auth: Authenticator,
        *,
        on_signal: Callable[[str], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._auth = auth
        self._on_signal = on_signal
        self._clock = clock

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(SIGNALS_PATH, self._post)
        app.router.add_get(SIGNALS_PATH, self._list)
        app.router.add_get(SIGNALS_PATH + "/{signal_id}", self._get)

    async def _post(self, request: web.Request) -> web.Response:
        principal = await authenticated(request, self._auth)
        body = await read_object(request)
        now = now_msc(self._clock)
        client_id, signal = signal_of_post(body, now)
        if not principal.may(client_id):
            raise refusal(forbidden(principal, client_id))
        if expired(signal, now):
            raise ApiError(
                422, "expired", f"'valid_until_ms' {signal.valid_until_ms} is in the past"
            )
        problem = signal_problem(signal)
        if problem is not None:
            raise ApiError(400, "bad_signal", problem)
        added = await asyncio.to_thread(self._store.add, client_id, signal, now)
        if added == "duplicate":
            raise ApiError(409, "duplicate", f"signal id {signal.id[:100]!r} exists")
        if added == "full":
            raise ApiError(
                429,
                "too_many_signals",
                f"{MAX_WAITING} signals already wait for client {client_id[:64]!r}",
                headers={"Retry-After": "10"},
            )
        log.info(
            "gateway: signal %s from %r (%s) for client %r: %s %s",
            signal.id,
            principal.name,
            signal.source,
            client_id,
            signal.side,
            signal.symbol,
        )
        if self._on_signal is not None:
            self._on_signal(client_id)
        return json_response({"id": signal.id, "state": "pending"}, status=201)

    async def _get(self, request: web.Request) -> web.Response:
        principal = await authenticated(request, self._auth)
        signal_id = request.match_info["signal_id"]
        stored = await asyncio.to_thread(self._store.get, signal_id)
        # Another client's signal answers 404 too: its existence is not this user's business.
        if stored is None or not principal.may(stored.client_id):
            raise ApiError(404, "not_found", f"no signal {signal_id[:100]!r}")
        return json_response(stored.as_json(now_msc(self._clock)))

    async def _list(self, request: web.Request) -> web.Response:
        principal = await authenticated(request, self._auth)
        client_id = request.query.get("client_id", "")
        if not client_id:
            raise ApiError(400, "bad_request", "give ?client_id=…")
        if not principal.may(client_id):
            raise refusal(forbidden(principal, client_id))
        rows = await asyncio.to_thread(self._store.list, client_id)
        now = now_msc(self._clock)
        return json_response({"signals": [r.as_json(now) for r in rows]})
