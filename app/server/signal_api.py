"""The gateway's signal endpoints: AI services post signals, anyone allowed reads them.

``POST /api/v1/signals`` takes one signal for the client it names, with the gateway's
own credentials (a bearer token from ``/api/auth/login``, Basic ``user:password``, or a
backend key): a service account is a user of the users file allowed that client id. The
body is decoded straight into :class:`SignalPost` (unknown fields refused), judged by
:mod:`app.protocol.signal_rules`, stored (:mod:`app.server.signal_store`) and the
bridge is nudged to send it to the client now. Every refusal is one line:
400 (form or value rule), 403 (another user's client id), 409 (the id exists),
422 (already expired).

``GET /api/v1/signals/{id}`` answers the signal with its state and the client's
outcome; ``GET /api/v1/signals?client_id=X`` lists that client's signals, newest first.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import msgspec
from aiohttp import web

from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.protocol.codec import MAX_ID_LENGTH, Signal
from app.protocol.signal_rules import expired, signal_problem
from app.server.auth import Authenticator, forbidden
from app.server.httpjson import ApiError, authenticated, json_response, read_object, refusal
from app.server.signal_store import SignalStore

log = logging.getLogger(__name__)

#: A signal without ``created_at_ms`` is created at its POST; without ``id`` it gets one.
SIGNALS_PATH = "/api/v1/signals"


class SignalPost(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The JSON body of ``POST /api/v1/signals``."""

    client_id: str
    source: str
    symbol: str
    side: str
    valid_until_ms: int
    id: str | None = None
    created_at_ms: int | None = None
    volume: float | None = None
    risk_pct: float | None = None
    sl: float | None = None
    tp: float | None = None
    price: float | None = None
    comment: str = ""

    def signal(self, now_ms: int) -> Signal:
        return Signal(
            id=self.id if self.id is not None else uuid.uuid4().hex,
            source=self.source,
            symbol=self.symbol,
            side=self.side,
            valid_until_ms=self.valid_until_ms,
            created_at_ms=self.created_at_ms if self.created_at_ms is not None else now_ms,
            volume=self.volume,
            risk_pct=self.risk_pct,
            sl=self.sl,
            tp=self.tp,
            price=self.price,
            comment=self.comment,
        )


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
        try:
            post = msgspec.convert(body, SignalPost)
        except msgspec.ValidationError as exc:
            raise ApiError(400, "bad_request", str(exc)[:200]) from None
        if not 0 < len(post.client_id) <= MAX_ID_LENGTH or not post.client_id.isprintable():
            raise ApiError(400, "bad_request", "'client_id' must be 1..200 printable characters")
        if not principal.may(post.client_id):
            raise refusal(forbidden(principal, post.client_id))
        now = now_msc(self._clock)
        signal = post.signal(now)
        if expired(signal, now):
            raise ApiError(
                422, "expired", f"'valid_until_ms' {signal.valid_until_ms} is in the past"
            )
        problem = signal_problem(signal)
        if problem is not None:
            raise ApiError(400, "bad_signal", problem)
        if not await asyncio.to_thread(self._store.add, post.client_id, signal, now):
            raise ApiError(409, "duplicate", f"signal id {signal.id[:100]!r} exists")
        log.info(
            "gateway: signal %s from %r (%s) for client %r: %s %s",
            signal.id,
            principal.name,
            signal.source,
            post.client_id,
            signal.side,
            signal.symbol,
        )
        if self._on_signal is not None:
            self._on_signal(post.client_id)
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
