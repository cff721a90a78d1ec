"""The NATS sink's throughput and latency into a real one-node JetStream, printed as JSON.

The pipeline harness of ``trading-client bench pipeline`` (app/bench/runs.py) with
``backend.sink = "nats"``: the simulated terminal, the worker pool, the collector and the
sink are the real ones, the stream is a real ``nats-server`` (app/nats/cluster.py).
Two phases: full speed (acked ticks/s: the sink's capacity) and 10k ticks/s offered
(capture → ack p50/p99, from the link's latency sink).

Run from the repository root: ``python benchmarks/bench_nats_sink.py [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.bench.harness import Progress, Settings
from app.bench.runs import (
    FULL_SPEED_RATE,
    _Latencies,
    fresh_spool,
    measure,
    pipeline_config,
    running,
)
from app.config import DEFAULT_SYMBOLS, ClientConfig
from app.nats.cluster import LocalCluster


def nats_config(rate_per_symbol: float, spool: Path, servers: str) -> ClientConfig:
    doc = pipeline_config(rate_per_symbol, spool, None, monitoring=False).model_dump(mode="json")
    doc["backend"] = {
        "sink": "nats",
        "nats_url": servers,
        "hub_url": "http://127.0.0.1:9",  # nothing listens: the hub client only retries
        "embedded": "never",
        "client_id": "bench",
        "spool_dir": str(spool),
    }
    return ClientConfig.model_validate(doc)


async def phase(
    name: str, rate: float, servers: str, folder: Path, settings: Settings
) -> dict[str, Any]:
    progress = Progress()
    lat = _Latencies()
    config = nats_config(rate, fresh_spool(folder), servers)
    async with running(config, settings, progress, name, latency_sink=lat) as rt:
        return await measure(rt, settings.seconds, lat)


async def main(seconds: float, phases: tuple[str, ...]) -> dict[str, Any]:
    """Each phase on a fresh one-node server, so one phase's stored data (the full-speed
    phase writes GBs) does not slow the next one down."""
    settings = Settings(seconds=seconds)
    rates = {"full_speed": FULL_SPEED_RATE, "10k_ticks_per_s": 10_000 / len(DEFAULT_SYMBOLS)}
    out: dict[str, Any] = {}
    for name in phases:
        with tempfile.TemporaryDirectory() as tmp, LocalCluster(Path(tmp) / "nats", size=1) as nats:
            out[name] = await phase(name, rates[name], nats.servers, Path(tmp), settings)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--phases",
        default="full_speed,10k_ticks_per_s",
        help="comma-separated: full_speed, 10k_ticks_per_s",
    )
    args = parser.parse_args()
    result = asyncio.run(main(args.seconds, tuple(args.phases.split(","))))
    print(json.dumps(result, indent=2))
