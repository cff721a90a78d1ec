"""The API gateway: logins, per-client settings with optimistic concurrency, bridge stats.

Tokens are random, opaque and held in memory only (by :class:`~app.server.auth.
Authenticator`): a restarted gateway forgets them and clients simply log in again, which
keeps secrets out of the database. Passwords and tokens never reach a log line.

There is no built-in account: users come from the backend's users file. Every endpoint
but ``login`` and ``health`` needs a credential, and a user reads and writes only the
settings of its own client ids; bridge statistics list only its own sessions.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from app.server.auth import Authenticator, AuthRefused, forbidden
from app.server.httpjson import (
    DEFAULT_HTTP_LIMITS,
    ApiError,
    HttpLimits,
    authenticated,
    health,
    json_app,
    json_response,
    peer_address,
    read_object,
    refusal,
)
from app.server.settings import SettingsDoc, SettingsStore
from app.server.signal_api import SignalApi
from app.server.store import TickStore
from app.server.users import Principal

log = logging.getLogger(__name__)


def _etag(version: int) -> str:
    return f'"{version}"'


def _parse_etag(value: str) -> int | None:
    """The version named by a strong ETag ``"N"``; None for anything else (no match)."""
    value = value.strip()
    if len(value) >= 3 and value[0] == value[-1] == '"' and value[1:-1].isdigit():
        return int(value[1:-1])
    return None


class Gateway:
    def __init__(
        self,
        store: TickStore,
        settings: SettingsStore,
        auth: Authenticator,
        *,
        limits: HttpLimits = DEFAULT_HTTP_LIMITS,
        signals: SignalApi | None = None,
    ) -> None:
        self._signals = signals
        self._store = store
        self._settings = settings
        self._auth = auth
        self._limits = limits

    def app(self) -> web.Application:
        app = json_app(self._limits)
        app.router.add_get("/health", health("gateway"))
        app.router.add_post("/api/auth/login", self._login)
        app.router.add_post("/api/auth/refresh", self._refresh)
        app.router.add_get("/api/settings/{client_id}", self._get_settings)
        app.router.add_put("/api/settings/{client_id}", self._put_settings)
        app.router.add_get("/api/bridge/stats", self._stats)
        if self._signals is not None:
            self._signals.add_routes(app)
        return app

    def _issue(self, principal: Principal) -> web.Response:
        token = self._auth.issue(principal)
        ttl = self._auth.token_ttl
        ttl_out = int(ttl) if float(ttl).is_integer() else ttl
        return json_response({"access_token": token, "token_type": "bearer", "expires_in": ttl_out})

    async def _client(self, request: web.Request) -> str:
        """The path's client id, once the request's principal may use it (else 401/403)."""
        principal = await authenticated(request, self._auth)
        client_id = request.match_info["client_id"]
        if not principal.may(client_id):
            raise refusal(forbidden(principal, client_id))
        return client_id

    # ------------------------------------------------------------------ auth
    async def _login(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError(400, "bad_request", "'username' and 'password' must be strings")
        try:
            principal = await self._auth.login(username, password, peer_address(request))
        except AuthRefused as exc:
            raise refusal(exc) from None
        log.info("gateway: user %r logged in", username)
        return self._issue(principal)

    async def _refresh(self, request: web.Request) -> web.Response:
        return self._issue(await authenticated(request, self._auth))

    # ------------------------------------------------------------------ settings
    @staticmethod
    def _settings_response(doc: SettingsDoc, status: int = 200) -> web.Response:
        return json_response(doc.as_json(), status=status, headers={"ETag": _etag(doc.version)})

    async def _get_settings(self, request: web.Request) -> web.Response:
        client_id = await self._client(request)
        doc = await asyncio.to_thread(self._settings.get, client_id)
        return self._settings_response(doc)

    async def _put_settings(self, request: web.Request) -> web.Response:
        client_id = await self._client(request)
        if_match = request.headers.get("If-Match")
        if if_match is None:
            raise ApiError(
                428,
                "precondition_required",
                'send If-Match: "N" with the version the change is based on',
            )
        body = await read_object(request)
        settings = body.get("settings")
        if not isinstance(settings, dict):
            raise ApiError(400, "bad_request", "'settings' must be a JSON object")
        expected = _parse_etag(if_match)
        if expected is None:
            current = await asyncio.to_thread(self._settings.get, client_id)
            return self._settings_response(current, 412)
        ok, doc = await asyncio.to_thread(self._settings.put, client_id, expected, settings)
        return self._settings_response(doc, 200 if ok else 412)

    # ------------------------------------------------------------------ stats
    async def _stats(self, request: web.Request) -> web.Response:
        principal = await authenticated(request, self._auth)
        stats = await asyncio.to_thread(self._store.stats)
        if not principal.admin:
            # Backend-wide counters name nobody; the sessions are each one client's.
            stats["sessions"] = [s for s in stats["sessions"] if principal.may(s["client_id"])]
        return json_response(stats)
