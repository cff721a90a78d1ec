"""Hostile answers from a gateway or hub: read within a cap, parsed within a depth.

A tiny aiohttp server on 127.0.0.1 plays the hostile peer: a 200 MB settings answer
(streamed, with and without a Content-Length), a 100k-deep document, a repeated key, a
gzip body nobody asked for, and a 300 MB hub answer. Before, the client buffered every
byte (909 MB for 200 MB, 1.8 GB for 300 MB) or died of a RecursionError. Each must now be
refused with one clear line, with the client's memory barely moving and the server seeing
the connection dropped long before it finished sending.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import psutil
import pytest
from aiohttp import web

from app.link.bodies import MAX_GATEWAY_BODY
from app.link.gateway import GatewayClient, GatewayError
from app.link.hub import HubClient
from tests.conftest import wait_until

HUGE = 200 * 2**20
CHUNK = b"x" * 2**16


class Hostile:
    """Counts what it managed to send of each huge answer."""

    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        self.done: dict[str, asyncio.Event] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/auth/login", self.login)
        app.router.add_get("/api/settings/{client_id}", self.settings)
        app.router.add_post("/api/services/register", self.register)
        return app

    async def login(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": "tok-123456", "expires_in": 600})

    async def settings(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["client_id"]
        if kind == "deep":
            return web.Response(body=b"[" * 100_000 + b"]" * 100_000)
        if kind == "duplicate":
            return web.Response(body=b'{"version": 1, "settings": {}, "version": 7}')
        if kind == "gzip":
            body = gzip.compress(b'{"version": 1, "settings": {}}' + b" " * 10_000_000)
            return web.Response(body=body, headers={"Content-Encoding": "gzip"})
        return await self.stream(request, kind, declared=kind == "declared")

    async def register(self, request: web.Request) -> web.StreamResponse:
        return await self.stream(request, "hub", declared=False, size=300 * 2**20)

    async def stream(
        self, request: web.Request, kind: str, *, declared: bool, size: int = HUGE
    ) -> web.StreamResponse:
        self.sent[kind] = 0
        self.done[kind] = asyncio.Event()
        response = web.StreamResponse()
        response.content_type = "application/json"
        if declared:
            response.content_length = size
        await response.prepare(request)
        try:
            await response.write(b'{"version": 1, "settings": {"pad": "')
            while self.sent[kind] < size:
                await response.write(CHUNK)
                self.sent[kind] += len(CHUNK)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.done[kind].set()
        return response


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[Hostile, str]]:
    peer = Hostile()
    runner = web.AppRunner(peer.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield peer, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("streamed", "answer is over the 1 MiB limit; reading stopped"),
        ("declared", f"answer of {HUGE:,} bytes is over the 1 MiB limit"),
        ("deep", "answer refused: not valid JSON"),
        ("duplicate", "answer refused: the key 'version' appears twice in one object"),
        ("gzip", "answer is compressed (gzip) although not asked to be"),
    ],
)
async def test_a_hostile_gateway_answer_is_refused_with_one_line(
    hostile: tuple[Hostile, str], kind: str, reason: str
) -> None:
    peer, url = hostile
    before = rss()
    async with GatewayClient(url, "alice", "pw-123456") as gateway:
        with pytest.raises(GatewayError) as info:
            await gateway.get_settings(kind)
    text = str(info.value)
    assert text.startswith(f"GET {url}/api/settings/{kind}: ")
    assert reason in text
    assert "\n" not in text
    assert rss() - before < 64 * 2**20  # not the 909 MB of a buffered 200 MB answer
    if kind in peer.done:
        await asyncio.wait_for(peer.done[kind].wait(), 30)
        # The client hung up: most of the 200 MB was never even sent.
        assert peer.sent[kind] < HUGE // 4
        assert peer.sent[kind] >= MAX_GATEWAY_BODY - len(CHUNK) or kind == "declared"


async def test_a_300_mb_hub_answer_is_refused_and_retried_with_backoff(
    hostile: tuple[Hostile, str],
) -> None:
    peer, url = hostile
    before = rss()
    hub = HubClient(url, "desk-1", heartbeat_interval=0.5)
    task = asyncio.create_task(hub.run())
    try:
        await wait_until(lambda: hub.state.failures >= 1, 30, "a refused registration")
    finally:
        await hub.aclose()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not hub.state.registered
    assert hub.state.last_error == (
        f"POST {url}/api/services/register: answer is over the 256 KiB limit; reading stopped"
    )
    assert rss() - before < 64 * 2**20  # not the 1.8 GB of a buffered 300 MB answer
    assert peer.sent["hub"] < 300 * 2**20 // 4
