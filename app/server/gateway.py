"""The API gateway: logins, per-client settings with optimistic concurrency, bridge stats.

Tokens are random, opaque and held in memory only: a restarted gateway forgets them and
clients simply log in again, which keeps secrets out of the database. Passwords and
tokens never reach a log line.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from app.clock import SYSTEM_CLOCK, Clock
from app.server.httpjson import (
    DEFAULT_HTTP_LIMITS,
    ApiError,
    HttpLimits,
    health,
    json_app,
    json_response,
    read_object,
)
from app.server.settings import SettingsDoc, SettingsStore
from app.server.store import TickStore

log = logging.getLogger(__name__)

DEFAULT_USERS: Mapping[str, str] = {"trader": "trader"}
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class _Token:
    username: str
    expires: float  # on the monotonic clock


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
        *,
        users: Mapping[str, str] | None = None,
        token_ttl: float = 3600.0,
        clock: Clock = SYSTEM_CLOCK,
        limits: HttpLimits = DEFAULT_HTTP_LIMITS,
    ) -> None:
        if token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        self._store = store
        self._settings = settings
        self._users = dict(DEFAULT_USERS if users is None else users)
        self._ttl = token_ttl
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._limits = limits

    def app(self) -> web.Application:
        app = json_app(self._limits)
        app.router.add_get("/health", health("gateway"))
        app.router.add_post("/api/auth/login", self._login)
        app.router.add_post("/api/auth/refresh", self._refresh)
        app.router.add_get("/api/settings/{client_id}", self._get_settings)
        app.router.add_put("/api/settings/{client_id}", self._put_settings)
        app.router.add_get("/api/bridge/stats", self._stats)
        return app

    # ------------------------------------------------------------------ tokens
    def _issue(self, username: str) -> web.Response:
        now = self._clock.monotonic()
        # Forget expired tokens here, where the table grows, so it stays small.
        for token in [t for t, v in self._tokens.items() if v.expires <= now]:
            del self._tokens[token]
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Token(username, now + self._ttl)
        ttl = int(self._ttl) if float(self._ttl).is_integer() else self._ttl
        return json_response({"access_token": token, "token_type": "bearer", "expires_in": ttl})

    def _authorize(self, request: web.Request) -> str:
        """The user behind the request's bearer token, or a 401."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "a bearer token is required", headers=_UNAUTHORIZED)
        entry = self._tokens.get(token)
        if entry is None:
            raise ApiError(401, "invalid_token", "unknown token", headers=_UNAUTHORIZED)
        if entry.expires <= self._clock.monotonic():
            del self._tokens[token]
            raise ApiError(401, "token_expired", "the token has expired", headers=_UNAUTHORIZED)
        return entry.username

    # ------------------------------------------------------------------ auth
    async def _login(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError(400, "bad_request", "'username' and 'password' must be strings")
        expected = self._users.get(username)
        # Compare even for an unknown user so that timing does not reveal which users exist.
        matches = hmac.compare_digest(
            (expected if expected is not None else "\x00" + password).encode(), password.encode()
        )
        if expected is None or not matches:
            log.warning("gateway: failed login for user %r", username[:64])
            raise ApiError(401, "invalid_credentials", "wrong username or password")
        log.info("gateway: user %r logged in", username)
        return self._issue(username)

    async def _refresh(self, request: web.Request) -> web.Response:
        return self._issue(self._authorize(request))

    # ------------------------------------------------------------------ settings
    @staticmethod
    def _settings_response(doc: SettingsDoc, status: int = 200) -> web.Response:
        return json_response(doc.as_json(), status=status, headers={"ETag": _etag(doc.version)})

    async def _get_settings(self, request: web.Request) -> web.Response:
        self._authorize(request)
        doc = await asyncio.to_thread(self._settings.get, request.match_info["client_id"])
        return self._settings_response(doc)

    async def _put_settings(self, request: web.Request) -> web.Response:
        self._authorize(request)
        client_id = request.match_info["client_id"]
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
    async def _stats(self, _: web.Request) -> web.Response:
        return json_response(await asyncio.to_thread(self._store.stats))
