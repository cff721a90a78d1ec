"""The central hub: which services are up, by registration and heartbeat.

The registry lives in memory on purpose: a restarted hub knows nobody, answers the next
heartbeat with 404, and each service registers again (protocol.md §3). That way the hub
never reports a service alive from a stale database.

Every call but ``health`` needs a credential. A service id is a client id: a user may
register, heartbeat and deregister only the ids it may use, an entry registered by one
user is never overwritten or removed by another (admins excepted), and ``list`` shows a
user only the services it may see.

Because it lives in memory, it is bounded (:class:`HubLimits`): registrations per owner
and in total, and every field's length. Issue #13 grew the backend by 116 MB and the
list answer to 101.6 MB with 2,000 junk registrations; now a registration beyond a quota
is refused with 429 before anything is stored, and the list answer is at most
``max_services`` entries of bounded size. Re-registering an id already held (a service
restarting) is never refused by a quota.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from app.clock import SYSTEM_CLOCK, Clock
from app.server.auth import Authenticator, forbidden
from app.server.httpjson import (
    DEFAULT_HTTP_LIMITS,
    ApiError,
    HttpLimits,
    authenticated,
    health,
    json_app,
    json_response,
    read_object,
    refusal,
)
from app.server.users import Principal

#: A service is stale after this many heartbeat intervals without one.
STALE_AFTER_INTERVALS = 3
DEFAULT_HEARTBEAT_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class HubLimits:
    """How much the in-memory registry may hold."""

    max_services: int = 1000
    max_per_owner: int = 100
    #: Longest ``service_id``, ``name`` and ``version``.
    max_field: int = 200
    max_capabilities: int = 32
    max_capability_length: int = 64


DEFAULT_HUB_LIMITS: Final = HubLimits()


@dataclass(slots=True)
class _Service:
    service_id: str
    name: str
    version: str
    capabilities: list[str]
    heartbeat_interval: float
    last_seen: float  # wall clock, for display
    seen_mono: float  # monotonic, for the stale rule
    #: The user that registered it: only it (or an admin) may overwrite or remove it,
    #: and the per-owner quota counts it.
    owner: str = ""


def _text(body: dict[str, Any], name: str, default: str | None = None, *, limit: int = 200) -> str:
    value = body.get(name, default)
    if (
        not isinstance(value, str)
        or (default is None and not value)
        or len(value) > limit
        or not value.isprintable()
    ):
        raise ApiError(400, "bad_request", f"'{name}' must be at most {limit} printable characters")
    return value


class Hub:
    def __init__(
        self,
        auth: Authenticator,
        *,
        clock: Clock = SYSTEM_CLOCK,
        limits: HttpLimits = DEFAULT_HTTP_LIMITS,
        hub_limits: HubLimits = DEFAULT_HUB_LIMITS,
    ) -> None:
        self._auth = auth
        self._clock = clock
        self._services: dict[str, _Service] = {}
        self._limits = limits
        self._hub_limits = hub_limits

    def app(self) -> web.Application:
        app = json_app(self._limits)
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
        bounds = self._hub_limits
        service_id = _text(body, "service_id", limit=bounds.max_field)
        self._check(principal, service_id, self._services.get(service_id))
        capabilities = body.get("capabilities", [])
        if (
            not isinstance(capabilities, list)
            or len(capabilities) > bounds.max_capabilities
            or not all(
                isinstance(c, str) and len(c) <= bounds.max_capability_length and c.isprintable()
                for c in capabilities
            )
        ):
            raise ApiError(
                400,
                "bad_request",
                f"'capabilities' must be a list of at most {bounds.max_capabilities} strings "
                f"of at most {bounds.max_capability_length} printable characters",
            )
        interval = body.get("heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ApiError(400, "bad_request", "'heartbeat_interval' must be a positive number")
        self._check_quota(service_id, principal.name)
        service = _Service(
            service_id=service_id,
            name=_text(body, "name", service_id, limit=bounds.max_field),
            version=_text(body, "version", "", limit=bounds.max_field),
            capabilities=list(capabilities),
            heartbeat_interval=float(interval),
            last_seen=0.0,
            seen_mono=0.0,
            owner=principal.name,
        )
        self._touch(service)
        self._services[service_id] = service
        return json_response({"registered": True, "heartbeat_interval": interval})

    def _check_quota(self, service_id: str, owner: str) -> None:
        """429 when a new id would exceed the total or the owner's quota."""
        if service_id in self._services:
            return  # a restart re-registers its own id: never refused by a quota
        bounds = self._hub_limits
        if len(self._services) >= bounds.max_services:
            raise ApiError(
                429,
                "quota_exceeded",
                f"the hub holds its maximum of {bounds.max_services} services",
            )
        held = sum(1 for s in self._services.values() if s.owner == owner)
        if held >= bounds.max_per_owner:
            raise ApiError(
                429,
                "quota_exceeded",
                f"at most {bounds.max_per_owner} services per owner; deregister one first",
            )

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
