"""The central hub against a raw httpx client: registration, heartbeats, stale services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.clock import ManualClock
from app.server import ReferenceBackend
from tests.server.conftest import AUTH, KEYS, poll_until


def service(service_id: str = "client-desk-1", interval: float = 5.0) -> dict[str, Any]:
    return {
        "service_id": service_id,
        "name": "trading-client",
        "version": "0.1.0",
        "capabilities": ["ticks", "bars"],
        "heartbeat_interval": interval,
    }


async def listed(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    answer = await http.get("/api/services")
    assert answer.status_code == 200
    return {s["service_id"]: s for s in answer.json()["services"]}


async def test_health(backend: ReferenceBackend) -> None:
    async with httpx.AsyncClient(base_url=backend.hub_url, headers=AUTH) as http:
        assert (await http.get("/health")).json() == {"status": "ok", "service": "hub"}


async def test_register_heartbeat_list_deregister(db_path: Path) -> None:
    clock = ManualClock(start=1_700_000_000.0)
    async with (
        ReferenceBackend(
            keys=KEYS, bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path, clock=clock
        ) as backend,
        httpx.AsyncClient(base_url=backend.hub_url, headers=AUTH) as http,
    ):
        answer = await http.post("/api/services/register", json=service())
        assert answer.json() == {"registered": True, "heartbeat_interval": 5.0}
        assert (await listed(http))["client-desk-1"] == {
            "service_id": "client-desk-1",
            "name": "trading-client",
            "version": "0.1.0",
            "capabilities": ["ticks", "bars"],
            "status": "alive",
            "last_seen": 1_700_000_000.0,
        }

        clock.advance(14.9)  # just under three intervals
        assert (await listed(http))["client-desk-1"]["status"] == "alive"
        clock.advance(0.2)
        assert (await listed(http))["client-desk-1"]["status"] == "stale"

        beat = await http.post("/api/services/client-desk-1/heartbeat")
        assert beat.json() == {"ok": True}
        entry = (await listed(http))["client-desk-1"]
        assert entry["status"] == "alive"
        assert entry["last_seen"] == pytest.approx(1_700_000_015.1)

        assert (await http.delete("/api/services/client-desk-1")).json() == {"ok": True}
        assert await listed(http) == {}
        assert (await http.delete("/api/services/client-desk-1")).status_code == 404
        gone = await http.post("/api/services/client-desk-1/heartbeat")
        assert gone.status_code == 404
        assert gone.json()["error"] == "unknown_service"


async def test_a_silent_service_goes_stale_in_real_time(backend: ReferenceBackend) -> None:
    async with httpx.AsyncClient(base_url=backend.hub_url, headers=AUTH) as http:
        await http.post("/api/services/register", json=service("quiet", interval=0.05))
        await http.post("/api/services/register", json=service("chatty", interval=60))

        async def quiet_is_stale() -> bool:
            return bool((await listed(http))["quiet"]["status"] == "stale")

        await poll_until(quiet_is_stale, 10, "the silent service to go stale")
        assert (await listed(http))["chatty"]["status"] == "alive"


async def test_after_a_hub_restart_heartbeats_get_404_until_registered_again(
    db_path: Path,
) -> None:
    async with (
        ReferenceBackend(
            keys=KEYS, bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path
        ) as first,
        httpx.AsyncClient(base_url=first.hub_url, headers=AUTH) as http,
    ):
        await http.post("/api/services/register", json=service())
        assert (await http.post("/api/services/client-desk-1/heartbeat")).status_code == 200
    async with (
        ReferenceBackend(
            keys=KEYS, bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path
        ) as second,
        httpx.AsyncClient(base_url=second.hub_url, headers=AUTH) as http,
    ):
        assert (await http.post("/api/services/client-desk-1/heartbeat")).status_code == 404
        await http.post("/api/services/register", json=service())
        assert (await http.post("/api/services/client-desk-1/heartbeat")).status_code == 200


async def test_a_bad_registration_is_400(backend: ReferenceBackend) -> None:
    async with httpx.AsyncClient(base_url=backend.hub_url, headers=AUTH) as http:
        for body in (
            {"name": "no id"},
            {**service(), "heartbeat_interval": 0},
            {**service(), "heartbeat_interval": "5"},
            {**service(), "capabilities": "ticks"},
        ):
            answer = await http.post("/api/services/register", json=body)
            assert answer.status_code == 400, body
            assert answer.json()["error"] == "bad_request"
