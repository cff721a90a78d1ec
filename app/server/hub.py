"""The central hub: which services are up, by registration and heartbeat.

The registry lives in memory on purpose: a restarted hub knows nobody, answers the next
heartbeat with 404, and each service registers again (protocol.md §3). That way the hub
never reports a service alive from a stale database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from app.clock import SYSTEM_CLOCK, Clock
from app.server.httpjson import ApiError, health, json_errors, json_response, read_object

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


def _text(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or (default is None and not value) or len(value) > 200:
        raise ApiError(400, "bad_request", f"'{name}' must be a string of at most 200 characters")
    return value


class Hub:
    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
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

    def _known(self, request: web.Request) -> _Service:
        service = self._services.get(request.match_info["service_id"])
        if service is None:
            raise ApiError(404, "unknown_service", "the hub does not know this service; register")
        return service

    def _touch(self, service: _Service) -> None:
        service.last_seen = self._clock.time()
        service.seen_mono = self._clock.monotonic()

    async def _register(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        service_id = _text(body, "service_id")
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
        )
        self._touch(service)
        self._services[service_id] = service
        return json_response({"registered": True, "heartbeat_interval": interval})

    async def _heartbeat(self, request: web.Request) -> web.Response:
        self._touch(self._known(request))
        return json_response({"ok": True})

    async def _deregister(self, request: web.Request) -> web.Response:
        del self._services[self._known(request).service_id]
        return json_response({"ok": True})

    def status(self, service: _Service) -> str:
        silent = self._clock.monotonic() - service.seen_mono
        return "stale" if silent > STALE_AFTER_INTERVALS * service.heartbeat_interval else "alive"

    async def _list(self, _: web.Request) -> web.Response:
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
                ]
            }
        )
