"""The hub client against a real HTTP hub on loopback, well-behaved and not.

The hub here is a deliberately small implementation of docs/protocol.md §3 with knobs
for misbehaving; the full reference backend is tested elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.backoff import BackoffPolicy
from app.link.hub import HubClient
from tests.conftest import wait_until

SERVICE_ID = "desk-1"
#: Retries come fast in tests, but keep their shape (exponential, jittered).
FAST = BackoffPolicy(initial=0.02, maximum=0.2)
INTERVAL = 0.05
WAIT = 15.0


class FakeHub:
    """In-memory hub; ``broken`` makes the next ``failures`` answers of a route bad."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval
        self.services: dict[str, dict[str, Any]] = {}
        self.registrations: list[dict[str, Any]] = []
        self.register_times: list[float] = []
        self.heartbeats = 0
        self.heartbeat_404 = 0
        self.deregistrations: list[str] = []
        self.broken: dict[str, str] = {}
        self.failures: dict[str, int] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/services/register", self.register)
        app.router.add_post("/api/services/{id}/heartbeat", self.heartbeat)
        app.router.add_delete("/api/services/{id}", self.deregister)
        return app

    def break_route(self, route: str, mode: str, times: int = 1_000_000) -> None:
        self.broken[route] = mode
        self.failures[route] = times

    async def misbehave(self, route: str) -> web.StreamResponse | None:
        if self.failures.get(route, 0) <= 0:
            return None
        self.failures[route] -= 1
        mode = self.broken[route]
        if mode == "500":
            return web.json_response({"error": "boom", "message": "exploded"}, status=500)
        if mode == "not-json":
            return web.Response(text="<html>proxy error</html>", content_type="text/html")
        if mode == "wrong-shape":
            return web.json_response({"registered": "maybe", "ok": "sure"})
        if mode == "slow":
            await asyncio.sleep(30)  # cancelled when the client gives up (handler_cancellation)
        raise AssertionError(f"unknown mode {mode}")

    async def register(self, request: web.Request) -> web.StreamResponse:
        self.register_times.append(time.monotonic())
        if (bad := await self.misbehave("register")) is not None:
            return bad
        body = await request.json()
        self.registrations.append(body)
        self.services[body["service_id"]] = body
        interval = self.interval or body["heartbeat_interval"]
        return web.json_response({"registered": True, "heartbeat_interval": interval})

    async def heartbeat(self, request: web.Request) -> web.StreamResponse:
        if (bad := await self.misbehave("heartbeat")) is not None:
            return bad
        if request.match_info["id"] not in self.services:
            self.heartbeat_404 += 1
            return web.json_response({"error": "unknown_service", "message": "?"}, status=404)
        self.heartbeats += 1
        return web.json_response({"ok": True})

    async def deregister(self, request: web.Request) -> web.StreamResponse:
        if (bad := await self.misbehave("deregister")) is not None:
            return bad
        service_id = request.match_info["id"]
        self.deregistrations.append(service_id)
        if self.services.pop(service_id, None) is None:
            return web.json_response({"error": "unknown_service", "message": "?"}, status=404)
        return web.json_response({"ok": True})


class Servers:
    """Starts aiohttp apps on loopback and stops whatever is left at teardown."""

    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []

    async def start(
        self, app: web.Application, *, port: int = 0, sock: socket.socket | None = None
    ) -> tuple[web.AppRunner, str]:
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        site: web.BaseSite
        if sock is not None:
            site = web.SockSite(runner, sock)
        else:
            site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        self.runners.append(runner)
        host, bound = runner.addresses[0][:2]
        return runner, f"http://{host}:{bound}"

    async def stop(self, runner: web.AppRunner) -> None:
        self.runners.remove(runner)
        await runner.cleanup()

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    s = Servers()
    yield s
    await s.close()


def bound_not_listening() -> socket.socket:
    """A loopback port that refuses connections now and can start listening later."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def hub_client(base_url: str, **kwargs: Any) -> HubClient:
    options: dict[str, Any] = {"heartbeat_interval": INTERVAL, "policy": FAST, "timeout": 5.0}
    options.update(kwargs)
    return HubClient(base_url, SERVICE_ID, **options)


@asynccontextmanager
async def running(hub: HubClient) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(hub.run())
    try:
        yield task
    finally:
        await hub.stop()
        assert task.done()


def hub_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "app.link.hub" and r.levelno >= logging.WARNING
    ]


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    await wait_until(predicate, timeout=WAIT, what=what)


# ---------------------------------------------------------------------------- tests
async def test_registers_heartbeats_and_deregisters_once(servers: Servers) -> None:
    fake = FakeHub(interval=INTERVAL)
    _, url = await servers.start(fake.app())
    # The client asks for 30 s; the hub's answer (50 ms) is the interval that counts.
    hub = hub_client(
        url, name="desk", version="9.9", capabilities=["ticks", "bars"], heartbeat_interval=30
    )
    async with running(hub):
        await wait_for(lambda: fake.heartbeats >= 3, "three heartbeats")
        state = hub.state
        assert state.registered
        assert state.last_error == ""
        assert state.last_ok > 0
        assert state.failures == 0
        assert state.registrations == 1
        assert state.heartbeat_interval == INTERVAL
    assert fake.registrations == [
        {
            "service_id": SERVICE_ID,
            "name": "desk",
            "version": "9.9",
            "capabilities": ["ticks", "bars"],
            "heartbeat_interval": 30,
        }
    ]
    assert fake.deregistrations == [SERVICE_ID]
    assert not hub.state.registered
    await hub.stop()
    await hub.aclose()
    assert fake.deregistrations == [SERVICE_ID]


async def test_waits_for_a_hub_that_is_not_up_yet(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.link.hub")
    sock = bound_not_listening()
    port = sock.getsockname()[1]
    hub = hub_client(f"http://127.0.0.1:{port}")
    async with running(hub):
        await wait_for(lambda: hub.state.failures >= 5, "five refused attempts")
        assert not hub.state.registered
        assert "connection refused" in hub.state.last_error
        assert f"127.0.0.1:{port}/api/services/register" in hub.state.last_error
        # One warning for the outage, not one per retry.
        assert len(hub_warnings(caplog)) == 1

        fake = FakeHub()
        await servers.start(fake.app(), sock=sock)
        await wait_for(lambda: hub.state.registered, "registration once the hub is up")
        await wait_for(lambda: fake.heartbeats >= 1, "a heartbeat")
        assert hub.state.last_error == ""
        assert fake.services.keys() == {SERVICE_ID}
    assert len(hub_warnings(caplog)) == 1


async def test_retries_follow_the_backoff_policy(servers: Servers) -> None:
    fake = FakeHub()
    fake.break_route("register", "500")
    _, url = await servers.start(fake.app())
    policy = BackoffPolicy(initial=0.05, maximum=0.2, multiplier=2.0, jitter=0.0)
    hub = hub_client(url, policy=policy)
    async with running(hub):
        await wait_for(lambda: len(fake.register_times) >= 6, "six register attempts")
    gaps = [b - a for a, b in zip(fake.register_times, fake.register_times[1:], strict=False)]
    # Lower bounds only: a busy machine can stretch a pause, never shorten it.
    for attempt, gap in enumerate(gaps[:5]):
        assert gap >= policy.ceiling(attempt) * 0.9, (attempt, gaps)


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("500", "HTTP 500"),
        ("not-json", "not valid JSON"),
        ("wrong-shape", "wrong shape"),
        ("slow", "timed out after 1 s"),
    ],
)
async def test_registration_survives_a_misbehaving_hub(
    servers: Servers, caplog: pytest.LogCaptureFixture, mode: str, fragment: str
) -> None:
    caplog.set_level(logging.INFO, logger="app.link.hub")
    fake = FakeHub()
    fake.break_route("register", mode, times=2)
    _, url = await servers.start(fake.app())
    hub = hub_client(url, timeout=1.0 if mode == "slow" else 5.0)
    async with running(hub):
        await wait_for(lambda: hub.state.registered, "registration after two bad answers")
        if mode == "slow":  # a loaded machine may time out a good answer too
            assert hub.state.failures >= 2
        else:
            assert hub.state.failures == 2
        assert hub.state.attempts >= hub.state.failures + 1
        assert hub.state.last_error == ""
    warnings = hub_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert fragment in warnings[0]
    assert "/api/services/register" in warnings[0]


async def test_failing_heartbeats_keep_the_registration_and_recover(servers: Servers) -> None:
    fake = FakeHub()
    _, url = await servers.start(fake.app())
    hub = hub_client(url)
    async with running(hub):
        await wait_for(lambda: fake.heartbeats >= 1, "a heartbeat")
        fake.break_route("heartbeat", "500", times=3)
        await wait_for(lambda: hub.state.failures >= 1, "a failed heartbeat")
        assert hub.state.registered
        assert "HTTP 500" in hub.state.last_error
        assert "/heartbeat" in hub.state.last_error
        await wait_for(lambda: hub.state.last_error == "", "heartbeats to work again")
        assert hub.state.failures == 3
        assert hub.state.registrations == 1


async def test_registers_again_after_the_hub_restarts(servers: Servers) -> None:
    first = FakeHub()
    runner, url = await servers.start(first.app())
    port = int(url.rsplit(":", 1)[1])
    hub = hub_client(url)
    async with running(hub):
        await wait_for(lambda: first.heartbeats >= 2, "heartbeats to the first hub")
        await servers.stop(runner)
        await wait_for(lambda: hub.state.failures >= 1, "heartbeats to fail while it is down")
        assert hub.state.registered  # the client cannot know yet that the hub forgot it

        second = FakeHub()
        await servers.start(second.app(), port=port)
        await wait_for(lambda: second.heartbeats >= 1, "heartbeats to the restarted hub")
        assert second.heartbeat_404 == 1
        assert second.services.keys() == {SERVICE_ID}
        assert hub.state.registrations == 2
        assert hub.state.registered
        assert hub.state.last_error == ""
    assert second.deregistrations == [SERVICE_ID]


async def test_cancelling_run_deregisters(servers: Servers) -> None:
    fake = FakeHub()
    _, url = await servers.start(fake.app())
    hub = hub_client(url)
    task = asyncio.create_task(hub.run())
    await wait_for(lambda: hub.state.registered, "registration")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.deregistrations == [SERVICE_ID]
    assert not hub.state.registered
    await hub.stop()
    assert fake.deregistrations == [SERVICE_ID]
    with pytest.raises(RuntimeError, match="closed"):
        await hub.run()


@pytest.mark.parametrize("gone", ["down", "slow"])
async def test_stop_does_not_hang_on_an_absent_hub(servers: Servers, gone: str) -> None:
    fake = FakeHub()
    runner, url = await servers.start(fake.app())
    hub = hub_client(url, timeout=1.0)
    async with running(hub):
        await wait_for(lambda: hub.state.registered, "registration")
        if gone == "down":
            await servers.stop(runner)
        else:
            fake.break_route("deregister", "slow")
        started = time.monotonic()
    # The deregistration is bounded by the (1 s) timeout, whatever the hub does.
    assert time.monotonic() - started < 4.0
    assert not hub.state.registered
    assert fake.deregistrations == []


async def test_async_with_stops_the_running_client(servers: Servers) -> None:
    fake = FakeHub()
    _, url = await servers.start(fake.app())
    async with hub_client(url) as hub:
        task = asyncio.create_task(hub.run())
        await wait_for(lambda: fake.heartbeats >= 1, "a heartbeat")
    assert task.done()
    assert fake.deregistrations == [SERVICE_ID]


async def test_a_passed_in_http_client_stays_open(servers: Servers) -> None:
    fake = FakeHub()
    _, url = await servers.start(fake.app())
    async with httpx.AsyncClient() as http:
        hub = hub_client(url, http=http)
        async with running(hub):
            await wait_for(lambda: hub.state.registered, "registration")
        assert not http.is_closed
        response = await http.post(f"{url}/api/services/{SERVICE_ID}/heartbeat")
        assert response.status_code == 404  # deregistered, and the client still works


async def test_run_twice_is_refused(servers: Servers) -> None:
    fake = FakeHub()
    _, url = await servers.start(fake.app())
    hub = hub_client(url)
    async with running(hub):
        await wait_for(lambda: hub.state.registered, "registration")
        with pytest.raises(RuntimeError, match="already running"):
            await hub.run()
    assert fake.deregistrations == [SERVICE_ID]


def test_rejects_nonsense_arguments() -> None:
    checks: list[Callable[[], object]] = [
        lambda: HubClient("http://x", ""),
        lambda: HubClient("http://x", "a", heartbeat_interval=0),
        lambda: HubClient("http://x", "a", timeout=0),
        lambda: HubClient("http://user:pw@x", "a"),
        lambda: HubClient("x:1", "a"),
    ]
    for check in checks:
        with pytest.raises(ValueError):  # noqa: PT011 -- each has its own message
            check()
