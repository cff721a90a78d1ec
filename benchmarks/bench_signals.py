"""Signal delivery latency: a service's POST → the client has the signal, as JSON.

The reference backend runs in its own process (as the embedded default does); a client
(bridge link + signal desk) is connected to it. Each round posts one signal to the
gateway and times until the client's desk is handed the frame (``on_signal``), one
signal at a time. Baselines in the same run, on the same backend:

* ``bridge_echo``: a one-tick ``ticks`` message → its ``ack`` on a raw WebSocket (the
  bridge's own round trip, SQLite commit included: the floor of anything through it);
* ``post_answer``: the POST → its 201 (the gateway's part: auth, validation, insert).

Run from the repository root: ``python benchmarks/bench_signals.py [--rounds 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import connect

from app.link.link import BridgeLink, LinkOptions
from app.link.signal_desk import SignalDesk, not_wired
from app.link.spool import Spool
from app.protocol import codec
from app.security.secret import Secret
from app.server.process import BackendProcess
from app.ticks import TickBatch, empty_ticks

CLIENT = "bench-desk"


class TimedDesk(SignalDesk):
    """Records when each signal frame reached the desk (perf_counter)."""

    def __init__(self) -> None:
        super().__init__(not_wired)
        self.seen: dict[str, float] = {}
        self.arrived = asyncio.Event()

    def on_signal(self, signal: codec.Signal) -> None:
        self.seen.setdefault(signal.id, time.perf_counter())
        self.arrived.set()
        super().on_signal(signal)


def stats(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


async def bench_signals(backend: BackendProcess, key: str, rounds: int) -> dict[str, Any]:
    desk = TimedDesk()
    spool = Spool(2**20, 0, None, client_id=CLIENT, session=uuid.uuid4().hex)
    link = BridgeLink(
        backend.bridge_url, CLIENT, spool, LinkOptions(), credential=Secret(key), signals=desk
    )
    task = asyncio.create_task(link.run())
    deliver, answer = [], []
    try:
        while not link.state.connected:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http:
            for i in range(rounds + 10):
                sid = f"bench-{i}-{uuid.uuid4().hex[:8]}"
                body = {
                    "client_id": CLIENT,
                    "id": sid,
                    "source": "bench",
                    "symbol": "EURUSD",
                    "side": "buy",
                    "volume": 0.01,
                    "valid_until_ms": int(time.time() * 1000) + 60_000,
                }
                desk.arrived.clear()
                t0 = time.perf_counter()
                r = await http.post(f"{backend.gateway_url}/api/v1/signals", json=body)
                t1 = time.perf_counter()
                r.raise_for_status()
                while sid not in desk.seen:
                    await asyncio.wait_for(desk.arrived.wait(), 10)
                    desk.arrived.clear()
                if i >= 10:  # warm-up rounds left out
                    deliver.append(desk.seen[sid] - t0)
                    answer.append(t1 - t0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await link.close()
        await desk.close()
    return {"post_to_received": stats(deliver), "post_answer": stats(answer)}


async def bench_echo(backend: BackendProcess, key: str, rounds: int) -> dict[str, Any]:
    tick = empty_ticks(1)
    samples = []
    async with connect(backend.bridge_url, max_size=None, compression=None) as ws:
        await ws.send(codec.encode(codec.Hello(CLIENT, uuid.uuid4().hex, 0, credential=key)))
        codec.decode_bridge(await ws.recv())
        for seq in range(1, rounds + 11):
            tick["time_msc"] = int(time.time() * 1000)
            tick["time"] = tick["time_msc"] // 1000
            tick["bid"], tick["ask"] = 1.1, 1.1001
            t0 = time.perf_counter()
            await ws.send(codec.encode_ticks(seq, [TickBatch("EURUSD", tick)]))
            ack = codec.decode_bridge(await ws.recv())
            assert isinstance(ack, codec.Ack)
            assert ack.seq == seq
            if seq > 10:
                samples.append(time.perf_counter() - t0)
    return {"bridge_echo": stats(samples)}


async def main(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        backend = BackendProcess(
            bridge_port=0,
            gateway_port=0,
            hub_port=0,
            db_path=Path(tmp) / "bench.sqlite",
            client_id=CLIENT,
            demo_signals=False,
        )
        await backend.start()
        try:
            key = backend.credential.reveal()
            result = await bench_signals(backend, key, rounds)
            result.update(await bench_echo(backend, key, rounds))
        finally:
            await backend.stop()
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.rounds)), indent=2))
