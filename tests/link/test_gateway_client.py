"""The gateway client against a real HTTP gateway on loopback, well-behaved and not.

The gateway here is a deliberately small implementation of docs/protocol.md §2 with
knobs for misbehaving; the full reference backend is tested elsewhere. Token expiry is
driven by a :class:`ManualClock` shared by the fake gateway and the client, so "time
passes" is a statement in the test rather than a sleep.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
import traceback
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.clock import SYSTEM_CLOCK, Clock, ManualClock
from app.link.gateway import (
    AuthError,
    GatewayClient,
    GatewayError,
    SettingsConflict,
    VersionedSettings,
)

USER = "alice"
PASSWORD = "pw-Zq8#not-for-logs"
CLIENT_ID = "desk-1"
STATS = {
    "ticks_received": 1200,
    "ticks_stored": 1200,
    "batches_stored": 96,
    "duplicate_batches": 1,
    "refused_messages": 0,
    "sessions": [{"client_id": CLIENT_ID, "session": "5f0c", "last_seq": 97, "ticks": 1200}],
}


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class FakeGateway:
    """In-memory gateway; ``broken[route]`` makes that route misbehave."""

    def __init__(self, clock: Clock, ttl: float = 60.0) -> None:
        self.clock = clock
        self.ttl = ttl
        self.password = PASSWORD
        self.tokens: dict[str, float] = {}  # token -> expiry on clock.monotonic()
        self.issued: list[str] = []
        self.documents: dict[str, tuple[int, dict[str, Any]]] = {}
        self.if_match: list[str | None] = []
        self.logins = 0
        self.refreshes = 0
        self.refused_refreshes = 0
        self.reject_next = 0  # protected requests refused with 401 despite a good token
        self.broken: dict[str, str] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_post("/api/auth/login", self.login)
        app.router.add_post("/api/auth/refresh", self.refresh)
        app.router.add_get("/api/settings/{client_id}", self.get_settings)
        app.router.add_put("/api/settings/{client_id}", self.put_settings)
        app.router.add_get("/api/bridge/stats", self.stats)
        return app

    def revoke_all(self) -> None:
        """What a gateway restart does to sessions: every token is dead, refresh too."""
        self.tokens.clear()

    async def misbehave(self, route: str, request: web.Request) -> web.StreamResponse | None:
        mode = self.broken.get(route)
        if mode is None:
            return None
        if mode == "500":
            return _error(500, "boom", "server exploded")
        if mode == "500-echo":  # a careless gateway quoting the request back
            echo = f"{await request.text()} {request.headers.get('Authorization')}"
            return _error(500, "boom", echo)
        if mode == "not-json":
            return web.Response(text="<html>502 bad gateway</html>", content_type="text/html")
        if mode == "wrong-shape":
            return web.json_response(["not", "an", "object"])
        if mode == "slow":
            await asyncio.sleep(30)  # cancelled when the client gives up (handler_cancellation)
        raise AssertionError(f"unknown mode {mode}")

    def _issue(self) -> web.Response:
        token = f"tok-{secrets.token_hex(8)}"
        self.issued.append(token)
        self.tokens[token] = self.clock.monotonic() + self.ttl
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": self.ttl}
        )

    def _bearer(self, request: web.Request) -> str | None:
        """The caller's live token, or None (and the request is refused)."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        expiry = self.tokens.get(token)
        if expiry is None or self.clock.monotonic() >= expiry:
            return None
        return token

    def _protected(self, request: web.Request) -> web.Response | None:
        if self._bearer(request) is None:
            return _error(401, "unauthorized", "token missing or expired")
        if self.reject_next > 0:
            self.reject_next -= 1
            return _error(401, "unauthorized", "token revoked")
        return None

    async def health(self, request: web.Request) -> web.StreamResponse:
        if (bad := await self.misbehave("health", request)) is not None:
            return bad
        return web.json_response({"status": "ok", "service": "gateway"})

    async def login(self, request: web.Request) -> web.StreamResponse:
        if (bad := await self.misbehave("login", request)) is not None:
            return bad
        body = await request.json()
        if body.get("username") != USER or body.get("password") != self.password:
            return _error(401, "bad_credentials", "wrong username or password")
        self.logins += 1
        return self._issue()

    async def refresh(self, request: web.Request) -> web.StreamResponse:
        if (bad := await self.misbehave("refresh", request)) is not None:
            return bad
        token = self._bearer(request)
        if token is None:
            self.refused_refreshes += 1
            return _error(401, "unauthorized", "token expired")
        del self.tokens[token]
        self.refreshes += 1
        return self._issue()

    def _document(self, client_id: str, status: int = 200) -> web.Response:
        version, settings = self.documents.get(client_id, (0, {}))
        return web.json_response(
            {"version": version, "settings": settings},
            status=status,
            headers={"ETag": f'"{version}"'},
        )

    async def get_settings(self, request: web.Request) -> web.StreamResponse:
        if (bad := await self.misbehave("settings", request)) is not None:
            return bad
        if (refused := self._protected(request)) is not None:
            return refused
        return self._document(request.match_info["client_id"])

    async def put_settings(self, request: web.Request) -> web.StreamResponse:
        if (bad := await self.misbehave("settings", request)) is not None:
            return bad
        if (refused := self._protected(request)) is not None:
            return refused
        client_id = request.match_info["client_id"]
        if_match = request.headers.get("If-Match")
        self.if_match.append(if_match)
        if if_match is None:
            return _error(428, "precondition_required", "If-Match is required")
        current, _ = self.documents.get(client_id, (0, {}))
        if if_match != f'"{current}"':
            return self._document(client_id, status=412)
        body = await request.json()
        self.documents[client_id] = (current + 1, body["settings"])
        return self._document(client_id)

    async def stats(self, request: web.Request) -> web.StreamResponse:
        if (bad := await self.misbehave("stats", request)) is not None:
            return bad
        if (refused := self._protected(request)) is not None:
            return refused
        return web.json_response(STATS)


class Served:
    """One fake gateway on an ephemeral loopback port."""

    def __init__(self, fake: FakeGateway, runner: web.AppRunner, url: str) -> None:
        self.fake = fake
        self.runner = runner
        self.url = url


async def serve(fake: FakeGateway) -> Served:
    runner = web.AppRunner(fake.app(), handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return Served(fake, runner, f"http://{host}:{port}")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def gateway(clock: ManualClock) -> AsyncIterator[Served]:
    served = await serve(FakeGateway(clock))
    yield served
    await served.runner.cleanup()


@pytest.fixture
async def client(gateway: Served, clock: ManualClock) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(
        gateway.url, USER, PASSWORD, clock=clock, refresh_margin=10.0
    ) as client:
        yield client


# ---------------------------------------------------------------------------- settings
async def test_settings_round_trip(gateway: Served, client: GatewayClient) -> None:
    assert await client.get_settings(CLIENT_ID) == VersionedSettings(0, {})
    written = await client.put_settings(CLIENT_ID, {"theme": "dark", "symbols": ["EURUSD"]}, 0)
    assert written == VersionedSettings(1, {"theme": "dark", "symbols": ["EURUSD"]})
    assert await client.get_settings(CLIENT_ID) == written
    assert await client.put_settings(CLIENT_ID, {"theme": "light"}, 1) == VersionedSettings(
        2, {"theme": "light"}
    )
    assert gateway.fake.if_match == ['"0"', '"1"']
    assert gateway.fake.logins == 1


async def test_a_stale_write_raises_conflict_with_the_current_document(
    gateway: Served, client: GatewayClient
) -> None:
    await client.put_settings(CLIENT_ID, {"theme": "dark"}, 0)
    with pytest.raises(SettingsConflict) as caught:
        await client.put_settings(CLIENT_ID, {"theme": "light"}, 0)
    assert caught.value.current == VersionedSettings(1, {"theme": "dark"})
    assert caught.value.status == 412
    assert "412" in str(caught.value)
    assert f"/api/settings/{CLIENT_ID}" in str(caught.value)
    assert gateway.fake.documents[CLIENT_ID] == (1, {"theme": "dark"})


async def test_bridge_stats(client: GatewayClient) -> None:
    assert await client.bridge_stats() == STATS


# ---------------------------------------------------------------------------- auth
async def test_wrong_password_raises_auth_error(gateway: Served) -> None:
    async with GatewayClient(gateway.url, USER, "wrong-one") as client:
        with pytest.raises(AuthError) as caught:
            await client.get_settings(CLIENT_ID)
    assert caught.value.status == 401
    assert "/api/auth/login" in str(caught.value)
    assert "wrong username or password" in str(caught.value)


async def test_renews_the_token_ahead_of_expiry(
    gateway: Served, client: GatewayClient, clock: ManualClock
) -> None:
    fake = gateway.fake
    await client.get_settings(CLIENT_ID)
    assert (fake.logins, fake.refreshes) == (1, 0)

    clock.advance(45)  # 15 s left of 60, margin 10: nothing to do yet
    await client.get_settings(CLIENT_ID)
    assert (fake.logins, fake.refreshes) == (1, 0)

    clock.advance(6)  # 9 s left: refresh before using it
    await client.get_settings(CLIENT_ID)
    assert (fake.logins, fake.refreshes) == (1, 1)

    clock.advance(120)  # long expired: no point refreshing, log in straight away
    await client.get_settings(CLIENT_ID)
    assert (fake.logins, fake.refreshes, fake.refused_refreshes) == (2, 1, 0)


async def test_a_401_is_answered_by_a_refresh(gateway: Served, client: GatewayClient) -> None:
    await client.get_settings(CLIENT_ID)
    gateway.fake.reject_next = 1
    assert await client.get_settings(CLIENT_ID) == VersionedSettings(0, {})
    assert (gateway.fake.logins, gateway.fake.refreshes) == (1, 1)


async def test_a_401_with_a_dead_session_logs_in_again(
    gateway: Served, client: GatewayClient
) -> None:
    await client.get_settings(CLIENT_ID)
    gateway.fake.revoke_all()
    assert await client.get_settings(CLIENT_ID) == VersionedSettings(0, {})
    assert (gateway.fake.logins, gateway.fake.refused_refreshes) == (2, 1)


async def test_auth_error_when_the_login_after_a_401_fails(
    gateway: Served, client: GatewayClient
) -> None:
    await client.get_settings(CLIENT_ID)
    gateway.fake.revoke_all()
    gateway.fake.password = "changed-by-an-admin"
    with pytest.raises(AuthError, match="/api/auth/login"):
        await client.get_settings(CLIENT_ID)
    assert not client.logged_in


async def test_auth_error_when_even_a_fresh_token_is_refused(
    gateway: Served, client: GatewayClient
) -> None:
    await client.get_settings(CLIENT_ID)
    gateway.fake.reject_next = 2
    with pytest.raises(AuthError, match="fresh"):
        await client.get_settings(CLIENT_ID)
    assert gateway.fake.refreshes == 1  # renewed once, not in a loop


async def test_concurrent_requests_renew_once(gateway: Served, client: GatewayClient) -> None:
    await client.get_settings(CLIENT_ID)
    gateway.fake.revoke_all()
    results = await asyncio.gather(*(client.get_settings(CLIENT_ID) for _ in range(8)))
    assert results == [VersionedSettings(0, {})] * 8
    assert (gateway.fake.logins, gateway.fake.refused_refreshes) == (2, 1)


async def test_short_lived_tokens_in_real_time() -> None:
    fake = FakeGateway(SYSTEM_CLOCK, ttl=1.0)
    served = await serve(fake)
    try:
        async with GatewayClient(served.url, USER, PASSWORD, refresh_margin=0.4) as client:
            deadline = time.monotonic() + 20
            while fake.refreshes < 2:
                assert time.monotonic() < deadline, "tokens were not renewed"
                assert await client.get_settings(CLIENT_ID) == VersionedSettings(0, {})
                await asyncio.sleep(0.05)
    finally:
        await served.runner.cleanup()
    assert fake.logins >= 1


# ---------------------------------------------------------------------------- failures
async def invoke(client: GatewayClient, call: str) -> object:
    if call == "get":
        return await client.get_settings(CLIENT_ID)
    if call == "put":
        return await client.put_settings(CLIENT_ID, {}, 0)
    return await client.bridge_stats()


@pytest.mark.parametrize(
    ("broken", "call", "fragment"),
    [
        ("settings=500", "get", "GET {url}/api/settings/desk-1: HTTP 500 (boom: server explo"),
        (
            "settings=not-json",
            "get",
            "/api/settings/desk-1: HTTP 200, answer refused: not valid JSON",
        ),
        ("settings=wrong-shape", "put", "PUT {url}/api/settings/desk-1: answer has the wrong"),
        ("settings=slow", "get", "/api/settings/desk-1: timed out after 1 s"),
        ("stats=wrong-shape", "stats", "/api/bridge/stats: answer has the wrong shape"),
        ("stats=500", "stats", "/api/bridge/stats: HTTP 500 (boom: server exploded)"),
        ("login=wrong-shape", "get", "POST {url}/api/auth/login: answer has the wrong shape"),
        ("login=not-json", "get", "/api/auth/login: HTTP 200, answer refused: not valid JSON"),
    ],
)
async def test_errors_say_where_and_what(
    gateway: Served, clock: ManualClock, broken: str, call: str, fragment: str
) -> None:
    route, mode = broken.split("=")
    gateway.fake.broken[route] = mode
    async with GatewayClient(gateway.url, USER, PASSWORD, clock=clock, timeout=1.0) as client:
        with pytest.raises(GatewayError) as caught:
            await invoke(client, call)
    assert type(caught.value) is GatewayError
    assert fragment.format(url=gateway.url) in str(caught.value)


async def test_connection_refused() -> None:
    with socket.socket() as sock:  # bound, never listening: connecting is refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with GatewayClient(url, USER, PASSWORD) as client:
            with pytest.raises(GatewayError) as caught:
                await client.get_settings(CLIENT_ID)
            assert not await client.health()
    assert str(caught.value) == f"POST {url}/api/auth/login: connection refused"
    assert caught.value.status is None


@pytest.mark.parametrize(("mode", "healthy"), [(None, True), ("500", False), ("not-json", False)])
async def test_health(gateway: Served, mode: str | None, healthy: bool) -> None:
    if mode is not None:
        gateway.fake.broken["health"] = mode
    async with GatewayClient(gateway.url, USER, PASSWORD) as client:
        assert await client.health() is healthy
        assert not client.logged_in  # health needs no login


async def test_health_times_out(gateway: Served) -> None:
    gateway.fake.broken["health"] = "slow"
    async with GatewayClient(gateway.url, USER, PASSWORD, timeout=0.3) as client:
        assert not await client.health()


# ---------------------------------------------------------------------------- lifecycle
async def test_closing(gateway: Served) -> None:
    async with httpx.AsyncClient() as http:
        async with GatewayClient(gateway.url, USER, PASSWORD, http=http) as client:
            await client.get_settings(CLIENT_ID)
        assert not http.is_closed  # the caller's client stays the caller's
        with pytest.raises(RuntimeError, match="closed"):
            await client.get_settings(CLIENT_ID)
    owned = GatewayClient(gateway.url, USER, PASSWORD)
    await owned.aclose()
    await owned.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await owned.health()


# ---------------------------------------------------------------------------- secrets
async def test_the_password_and_tokens_never_show(
    gateway: Served, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = gateway.fake
    seen: list[str] = []
    errors: list[BaseException] = []

    def expect_failure(exc: BaseException) -> None:
        errors.append(exc)
        seen.extend([str(exc), repr(exc), *traceback.format_exception(exc)])

    client = GatewayClient(gateway.url, USER, PASSWORD, clock=clock, timeout=1.0)
    async with client:
        seen.append(repr(client))
        await client.get_settings(CLIENT_ID)
        clock.advance(55)
        await client.put_settings(CLIENT_ID, {"a": 1}, 0)  # after a refresh
        assert fake.refreshes == 1
        seen.extend([repr(client), repr(vars(client))])

        for route in ("settings", "login"):
            fake.broken[route] = "500-echo"  # the gateway quotes our request back
            fake.revoke_all()  # so that the login is retried and echoed too
            try:
                await client.get_settings(CLIENT_ID)
            except GatewayError as exc:
                expect_failure(exc)
            fake.broken.clear()
        fake.broken["settings"] = "slow"
        try:
            await client.get_settings(CLIENT_ID)
        except GatewayError as exc:
            expect_failure(exc)
        fake.broken.clear()
        try:
            await client.put_settings(CLIENT_ID, {}, 0)
        except SettingsConflict as exc:
            expect_failure(exc)
        fake.password = "changed"
        fake.revoke_all()
        try:
            await client.get_settings(CLIENT_ID)
        except AuthError as exc:
            expect_failure(exc)
        seen.append(repr(client))

    try:
        GatewayClient(f"http://{USER}:{PASSWORD}@{gateway.url[7:]}", USER, PASSWORD)
    except ValueError as exc:
        expect_failure(exc)

    assert [type(e).__name__ for e in errors] == [
        "GatewayError",
        "GatewayError",
        "GatewayError",
        "SettingsConflict",
        "AuthError",
        "ValueError",
    ]
    assert "Bearer ***" in str(errors[0])  # the echoes were there, scrubbed
    assert '"password":"***"' in str(errors[1]).replace(" ", "")
    assert "HTTP Request: POST" in caplog.text  # httpx's own log lines were captured
    seen.append(caplog.text)
    secrets_ = [PASSWORD, *fake.issued]
    assert len(fake.issued) >= 3
    for text in seen:
        for secret in secrets_:
            assert secret not in text, text
