"""The central hub: which services are up, by registration and heartbeat.

The registry lives in memory on purpose: a restarted hub knows nobody, answers the next
heartbeat with 404, and each service registers again (protocol.md §3). That way the hub
never reports a service alive from a stale database.

Every call but ``health`` needs a credential. A service id is a client id: a user may
register, heartbeat and deregister only the ids it may use, an entry registered by one
user is never overwritten or removed by another (admins excepted), and ``list`` shows a
user only the services it may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from app.clock import SYSTEM_CLOCK, Clock
from app.server.auth import Authenticator, forbidden
from app.server.httpjson import (
    ApiError,
    authenticated,
    health,
    json_errors,
    json_response,
    read_object,
    refusal,
)
from app.server.users import Principal

#: A service is stale after this many heartbeat intervals without one.
STALE_AFTER_INTERVALS = 3
DEFAULT_HEARTBEAT_INTERVAL = 10.0


@dataclass(slots=True)
class _Service:
    service_id: str
    name: str
    version: str
    capabilities: list[str]
    heartbeat_interval: float
    last_seen: float  # wall clock, for display
    seen_mono: float  # monotonic, for the stale rule
    owner: str = ""  # the user that registered it


def _text(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or (default is None and not value) or len(value) > 200:
        raise ApiError(400, "bad_request", f"'{name}' must be a string of at most 200 characters")
    return value


class Hub:
    def __init__(self, auth: Authenticator, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._auth = auth
        self._clock = clock
        self._services: dict[str, _Service] = {}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[json_errors])
        app.router.add_get("/health", health("hub"))
        app.router.add_post("/api/services/register", self._register)
        app.router.add_post("/api/services/{service_id}/heartbeat", self._heartbeat)
        app.router.add_delete("/api/services/{service_id}", self._deregister)
        app.router.add_get("/api/services", self._list)
        return app

    @staticmethod
    def _check(principal: Principal, service_id: str, existing: _Service | None) -> None:
        """403 unless ``principal`` may act on ``service_id`` (and owns its entry)."""
        if not principal.may(service_id):
            raise refusal(forbidden(principal, service_id))
        if existing is not None and existing.owner != principal.name and not principal.admin:
            raise ApiError(403, "forbidden", "this service was registered by another user")

    async def _known(self, request: web.Request) -> _Service:
        principal = await authenticated(request, self._auth)
        service_id = request.match_info["service_id"]
        service = self._services.get(service_id)
        self._check(principal, service_id, service)
        if service is None:
            raise ApiError(404, "unknown_service", "the hub does not know this service; register")
        return service

    def _touch(self, service: _Service) -> None:
        service.last_seen = self._clock.time()
        service.seen_mono = self._clock.monotonic()

    async def _register(self, request: web.Request) -> web.Response:
        principal = await authenticated(request, self._auth)
        body = await read_object(request)
        service_id = _text(body, "service_id")
        self._check(principal, service_id, self._services.get(service_id))
        capabilities = body.get("capabilities", [])
        if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
            raise ApiError(400, "bad_request", "'capabilities' must be a list of strings")
        interval = body.get("heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ApiError(400, "bad_request", "'heartbeat_interval' must be a positive number")
        service = _Service(
            service_id=service_id,
            name=_text(body, "name", service_id),
            version=_text(body, "version", ""),
            capabilities=list(capabilities),
            heartbeat_interval=float(interval),
            last_seen=0.0,
            seen_mono=0.0,
            owner=principal.name,
        )
        self._touch(service)
        self._services[service_id] = service
        return json_response({"registered": True, "heartbeat_interval": interval})

    async def _heartbeat(self, request: web.Request) -> web.Response:
        self._touch(await self._known(request))
        return json_response({"ok": True})

    async def _deregister(self, request: web.Request) -> web.Response:
        del self._services[(await self._known(request)).service_id]
        return json_response({"ok": True})

    def status(self, service: _Service) -> str:
        silent = self._clock.monotonic() - service.seen_mono
        return "stale" if silent > STALE_AFTER_INTERVALS * service.heartbeat_interval else "alive"

    async def _list(self, request: web.Request) -> web.Response:
        principal = await authenticated(request, self._auth)
        return json_response(
            {
                "services": [
                    {
                        "service_id": s.service_id,
                        "name": s.name,
                        "version": s.version,
                        "capabilities": s.capabilities,
                        "status": self.status(s),
                        "last_seen": s.last_seen,
                    }
                    for s in sorted(self._services.values(), key=lambda s: s.service_id)
                    if principal.may(s.service_id)
                ]
            }
        )
