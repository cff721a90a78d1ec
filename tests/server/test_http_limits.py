"""HTTP limits of the gateway and the hub (issue #13 item 3): body size, JSON nesting,
idle and half-open connections closed on a timeout (raw sockets), hub quotas and field
sizes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.server import ReferenceBackend
from app.server.httpjson import HttpLimits
from app.server.hub import HubLimits
from app.untrusted import json_depth
from tests.server.conftest import ADMIN_KEY, AUTH, KEYS

IDLE = 1.0
#: A POST route of each service that reads a JSON body.
POST_PATH = {"gateway": "/api/auth/login", "hub": "/api/services/register"}


@pytest.fixture
async def strict(db_path: Path) -> AsyncIterator[ReferenceBackend]:
    """A backend with short timeouts, so the tests wait one second, not fifteen."""
    async with ReferenceBackend(
        keys=KEYS,
        bridge_port=0,
        gateway_port=0,
        hub_port=0,
        db_path=db_path,
        http_limits=HttpLimits(idle_timeout=IDLE, body_timeout=IDLE),
    ) as running:
        yield running


def deep(depth: int) -> bytes:
    return b'{"service_id": "x", "junk": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("service", ["gateway", "hub"])
async def test_a_100k_deep_json_is_refused_with_400_quickly(
    backend: ReferenceBackend, service: str
) -> None:
    url, path = (
        (backend.gateway_url, "/api/auth/login")
        if service == "gateway"
        else (backend.hub_url, "/api/services/register")
    )
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        started = time.monotonic()
        answer = await http.post(path, content=deep(100_000))
        elapsed = time.monotonic() - started
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"
    assert "nested" in answer.json()["message"]
    assert elapsed < 2.0


async def test_nesting_is_bounded_by_max_json_depth(backend: ReferenceBackend) -> None:
    depth = HttpLimits().max_json_depth
    async with httpx.AsyncClient(base_url=backend.hub_url, headers=AUTH) as http:
        ok = await http.post("/api/services/register", content=deep(depth - 1))
        too_deep = await http.post("/api/services/register", content=deep(depth))
    assert ok.status_code == 200, ok.text
    assert too_deep.status_code == 400
    assert f"deeper than {depth}" in too_deep.json()["message"]


def test_json_depth_is_iterative_and_stops_early() -> None:
    assert json_depth(1, 5) == 0
    assert json_depth({"a": [1, {"b": []}]}, 10) == 4
    nested: Any = []
    for _ in range(200_000):  # far beyond Python's recursion limit
        nested = [nested]
    assert json_depth(nested, 32) == 33


@pytest.mark.parametrize("service", ["gateway", "hub"])
async def test_a_body_above_the_limit_is_refused_with_413(
    backend: ReferenceBackend, service: str
) -> None:
    url = backend.gateway_url if service == "gateway" else backend.hub_url
    body = b'{"x": "' + b"a" * (HttpLimits().max_body_bytes + 1) + b'"}'
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        answer = await http.post(POST_PATH[service], content=body)
    assert answer.status_code == 413
    assert answer.json()["error"] == "request_entity_too_large"


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def _closed_within(sock: socket.socket, timeout: float) -> tuple[bool, bytes]:
    """Whether the server closes ``sock`` within ``timeout``, and what it sent first."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


HALF_OPEN = {
    "nothing": b"",
    "half a request head": b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-",
    "half a body": b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
    + b"\r\nAuthorization: Bearer "
    + ADMIN_KEY.encode()
    + b'\r\nContent-Length: 100\r\n\r\n{"user',
}


@pytest.mark.parametrize("service", ["gateway", "hub"])
@pytest.mark.parametrize("sent", list(HALF_OPEN), ids=list(HALF_OPEN))
async def test_idle_and_half_open_connections_are_closed_on_a_timeout(
    strict: ReferenceBackend, service: str, sent: str
) -> None:
    port = strict.gateway_port if service == "gateway" else strict.hub_port

    def probe() -> tuple[bool, bytes, float]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            started = time.monotonic()
            if HALF_OPEN[sent]:
                sock.sendall(HALF_OPEN[sent].replace(b"{path}", POST_PATH[service].encode()))
            closed, got = _closed_within(sock, IDLE + 10)
            return closed, got, time.monotonic() - started

    closed, got, after = await asyncio.to_thread(probe)
    assert closed, f"still open after {after:.1f} s"
    assert after >= IDLE * 0.5
    if sent == "half a body":
        assert b" 408 " in got.split(b"\r\n", 1)[0]


async def test_hub_registrations_are_bounded_per_owner_and_in_size(db_path: Path) -> None:
    """2,000 junk registrations with the largest fields: all but the owner's quota are
    refused with 429, the list answer and the backend stay small; the legitimate id of a
    restarting service is never refused."""
    limits = HubLimits()
    async with (
        ReferenceBackend(
            keys=KEYS, bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path
        ) as backend,
        httpx.AsyncClient(base_url=backend.hub_url, headers=AUTH) as http,
    ):
        rss_before = _rss()
        statuses: dict[int, int] = {}
        for i in range(2000):
            junk = {
                "service_id": f"{i:06d}" + "s" * (limits.max_field - 6),
                "name": "n" * limits.max_field,
                "version": "v" * limits.max_field,
                "capabilities": ["c" * limits.max_capability_length] * limits.max_capabilities,
            }
            answer = await http.post("/api/services/register", json=junk)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            if answer.status_code == 429:
                assert answer.json()["error"] == "quota_exceeded"
        assert statuses == {200: limits.max_per_owner, 429: 2000 - limits.max_per_owner}
        listing = await http.get("/api/services")
        assert len(listing.json()["services"]) == limits.max_per_owner
        assert len(listing.content) < 1_000_000
        again = await http.post(
            "/api/services/register",
            json={"service_id": "000000" + "s" * (limits.max_field - 6)},
        )
        assert again.status_code == 200  # re-registering an id already held
        too_long = await http.post("/api/services/register", json={"service_id": "x" * 201})
        assert too_long.status_code == 400
        control = await http.post("/api/services/register", json={"service_id": "a\x1b[2Jb"})
        assert control.status_code == 400
        rss_after = _rss()
    print(
        f"\nhub: list answer {len(listing.content) / 1e3:.0f} kB for "
        f"{limits.max_per_owner} services; RSS +{(rss_after - rss_before) / 2**20:.1f} MB"
    )
    assert rss_after - rss_before < 50 * 2**20


async def test_a_settings_document_is_bounded_in_size_and_depth(backend: ReferenceBackend) -> None:
    """Settings are the documents the gateway keeps and every client pulls: a deep or
    huge one is refused before it is stored, and the stored version does not move."""
    limits = HttpLimits()
    async with httpx.AsyncClient(base_url=backend.gateway_url) as http:
        login = await http.post(
            "/api/auth/login", json={"username": "trader", "password": "trader"}
        )
        auth = {"Authorization": f"Bearer {login.json()['access_token']}", "If-Match": '"0"'}
        nested: Any = {}
        for _ in range(limits.max_json_depth):
            nested = {"a": nested}
        deep_doc = await http.put("/api/settings/desk-1", headers=auth, json={"settings": nested})
        huge = {"settings": {"x": "y" * limits.max_body_bytes}}
        huge_doc = await http.put("/api/settings/desk-1", headers=auth, json=huge)
        stored = await http.get("/api/settings/desk-1", headers=auth)
    assert deep_doc.status_code == 400
    assert huge_doc.status_code == 413
    assert stored.json() == {"version": 0, "settings": {}}
