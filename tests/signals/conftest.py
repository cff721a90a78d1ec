"""A signal client (bridge link + signal desk + a recording executor) and a service that
posts signals to the gateway, for tests against the real reference backend."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from app.backoff import BackoffPolicy
from app.link.link import BridgeLink, LinkOptions
from app.link.signal_desk import SignalDesk
from app.link.spool import Spool
from app.security.secret import Secret
from app.trading.intent import ExecutionReport, OrderIntent, Outcome
from tests.server.conftest import new_session


class RecordingExecutor:
    """Stands in for the execution path: records every intent, answers "executed".

    ``gate`` (when given) holds each answer until it is set, to stop time mid-order."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.intents: list[OrderIntent] = []
        self.gate = gate

    async def __call__(self, intent: OrderIntent) -> ExecutionReport:
        self.intents.append(intent)
        if self.gate is not None:
            await self.gate.wait()
        n = len(self.intents)
        return ExecutionReport(
            intent.request_id,
            Outcome.EXECUTED,
            "done",
            retcode=10009,
            order=1000 + n,
            deal=2000 + n,
            position=3000 + n,
            price=1.1,
            volume=intent.volume,
            slippage_points=0.0,
        )


def now_ms() -> int:
    return int(time.time() * 1000)


def signal_body(client_id: str, sid: str, source: str = "svc", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": client_id,
        "id": sid,
        "source": source,
        "symbol": "EURUSD",
        "side": "buy",
        "volume": 0.01,
        "sl": 1.09,
        "tp": 1.11,
        "valid_until_ms": now_ms() + 60_000,
        "comment": "test signal",
    }
    body.update(extra)
    return body


async def post(gateway: str, token: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{gateway}/api/v1/signals", json=body, headers={"Authorization": f"Bearer {token}"}
        )


async def get(gateway: str, token: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"{gateway}{path}", headers={"Authorization": f"Bearer {token}"})


@contextlib.asynccontextmanager
async def signal_client(
    bridge_url: str,
    client_id: str,
    credential: str,
    path: Path | None,
    executor: RecordingExecutor,
    *,
    auto: tuple[str, ...] = (),
) -> AsyncIterator[tuple[SignalDesk, BridgeLink]]:
    desk = SignalDesk(executor, auto_sources=set(auto), path=path)
    spool = Spool(2**20, 0, None, client_id=client_id, session=new_session())
    link = BridgeLink(
        bridge_url,
        client_id,
        spool,
        LinkOptions(policy=BackoffPolicy(initial=0.02, maximum=0.2)),
        credential=Secret(credential),
        signals=desk,
    )
    tasks = [asyncio.create_task(link.run()), asyncio.create_task(desk.run())]
    try:
        yield desk, link
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await link.close()
        await desk.close()
