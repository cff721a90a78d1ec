"""``trading-client bench scale``: K headless clients into one reference bridge, then into
a three-node JetStream cluster (R3 stream), and one ``store`` consumer reading it all back.

Each client is a real ``trading-client run`` process with its own worker process and
simulated terminal, as on a desk of K hosts squeezed onto this machine. Per target and K:

* **full speed** — every client offered more than it can take: acked ticks/s in total,
  measured on the *server's* side over the steady window (the bridge's stored rows; the
  stream's bytes, turned into ticks with the bytes per tick of the whole run, which the
  clients' own acked counts give at the end);
* **fixed rate** — 10,000 ticks/s per client: capture→ack latency percentiles from each
  client's ``--stats`` (the monitor's ``collector_to_ack``, one sample per message), the
  worst client's p99 reported.

Then **consumer**: ``trading-client store --until-idle`` over everything the cluster got:
ticks and messages stored per second. The benchmark never hangs: a deadline per phase,
one line on stderr for a failed phase, every process terminated (killed if it lingers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import nats

from app.bench.harness import (
    STOP_TIMEOUT_S,
    PhaseError,
    Progress,
    Settings,
    finish,
    kill,
    run_phase,
    server_process,
)
from app.config import DEFAULT_SYMBOLS
from app.nats.cluster import LocalCluster
from app.security.secret import Secret
from app.security.vault.encrypted_file import FileVault
from app.server.store import TickStore
from app.server.users import UserStore, users_path

#: Clients per run, by default.
CLIENTS: Final = (1, 2, 4)
#: Offered per client at full speed (more than one client's pipeline takes here).
FULL_RATE: Final = 300_000.0
#: Offered per client in the latency runs (the issue's figure).
FIXED_RATE: Final = 10_000.0
SYMBOLS: Final = tuple(DEFAULT_SYMBOLS[:3])
STREAM: Final = "TICKS"
_USER: Final = "bench"
_MASTER: Final = secrets.token_urlsafe(16)
#: Steady-state starts this long after the first ticks reach the target.
_WARMUP_S: Final = 1.5


@dataclass(frozen=True, slots=True)
class Run:
    """What one run of K clients measured."""

    clients: int
    rate: float
    acked_ticks_per_s: float
    capture_to_ack_ms: dict[str, float]
    ticks_acked: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "offered_per_client": self.rate,
            "acked_ticks_per_s": round(self.acked_ticks_per_s),
            "capture_to_ack_ms": self.capture_to_ack_ms,
            "ticks_acked": self.ticks_acked,
        }


class Target:
    """Where the clients deliver, and how much of it arrived (read on the target's side)."""

    name: str

    def backend(self, client_id: str) -> dict[str, Any]:
        raise NotImplementedError

    async def arrived(self) -> float:
        """Ticks (bridge) or bytes (stream) that arrived so far."""
        raise NotImplementedError

    def ticks_of(self, amount: float, ticks_total: int, amount_total: float) -> float:
        """``amount`` of :meth:`arrived`, in ticks."""
        return amount


class BridgeTarget(Target):
    name = "bridge"

    def __init__(self, urls: list[str], db: Path) -> None:
        self.urls = urls
        self.db = db

    def backend(self, client_id: str) -> dict[str, Any]:
        bridge, gateway, hub = self.urls
        return {
            "bridge_url": bridge,
            "gateway_url": gateway,
            "hub_url": hub,
            "gateway_username": _USER,
        }

    async def arrived(self) -> float:
        def stored() -> int:
            with TickStore(self.db) as store:
                return int(store.stats()["ticks_stored"])

        return float(await asyncio.to_thread(stored))


class StreamTarget(Target):
    name = "nats_r3"

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def backend(self, client_id: str) -> dict[str, Any]:
        return {
            "sink": "nats",
            "nats_url": self.cluster.servers,
            "nats_stream": STREAM,
            "nats_replicas": len(self.cluster.nodes),
        }

    async def arrived(self) -> float:
        nc = await nats.connect(servers=self.cluster.urls, connect_timeout=5)
        try:
            info = await nc.jetstream().stream_info(STREAM)
            return float(info.state.bytes)
        except nats.js.errors.NotFoundError:
            return 0.0
        finally:
            await nc.close()

    def ticks_of(self, amount: float, ticks_total: int, amount_total: float) -> float:
        # Bytes → ticks with the run's own ratio (a block's subject and headers included).
        return amount * ticks_total / amount_total if amount_total else 0.0


class Clients:
    """K ``trading-client run`` processes, each with its settings, vault and stats file."""

    def __init__(self, folder: Path, target: Target, count: int, rate: float, tag: str) -> None:
        self.folder = folder / tag
        self.folder.mkdir(parents=True)
        self.target = target
        self.ids = [f"bench-{tag}-{i}" for i in range(count)]
        self.rate = rate
        self.procs: list[asyncio.subprocess.Process] = []

    def _config(self, client_id: str, seed: int) -> Path:
        per_symbol = self.rate / len(SYMBOLS)
        doc = {
            "terminals": [
                {
                    "rates": dict.fromkeys(SYMBOLS, per_symbol),
                    "seed": seed,
                    "market_hours": "always",
                }
            ],
            "pool": {"size": 1},
            "backend": {
                "client_id": client_id,
                "embedded": "never",
                "spool_dir": str(self.folder / "spool"),
                **self.target.backend(client_id),
            },
            "backfill": {"enabled": False, "state_file": str(self.folder / f"{client_id}.json")},
            "monitor": {"enabled": True},
            "security": {"vault": "file", "vault_file": str(self.folder / "vault.bin")},
        }
        path = self.folder / f"{client_id}-config.json"
        path.write_text(json.dumps(doc))
        return path

    async def start(self, password: str) -> None:
        await asyncio.to_thread(
            FileVault(self.folder / "vault.bin", Secret(_MASTER)).set,
            f"gateway/{_USER}",
            Secret(password),
        )
        env = {**os.environ, "TRADING_CLIENT_MASTER_PASSWORD": _MASTER}
        for seed, client_id in enumerate(self.ids, start=1):
            config = self._config(client_id, seed)
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "app",
                    "run",
                    "--config",
                    str(config),
                    "--quiet",
                    "--stats",
                    str(self.folder / f"{client_id}-stats.json"),
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
            )

    async def stop(self) -> list[dict[str, Any]]:
        """SIGTERM (a clean stop writes ``--stats``); the stats of every client."""
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self.procs:
            if not await finish(proc.wait(), STOP_TIMEOUT_S):
                kill([proc.pid])
                await finish(proc.wait(), 10)
        stats = []
        for client_id, proc in zip(self.ids, self.procs, strict=True):
            path = self.folder / f"{client_id}-stats.json"
            if not path.exists():
                err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
                last = err.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
                raise PhaseError(f"client {client_id} wrote no stats: {last[0][:200]}")
            stats.append(json.loads(path.read_text()))
        return stats


async def _wait_for(probe: Callable[[], Awaitable[float]], above: float, what: str) -> float:
    """Poll ``probe`` until it exceeds ``above`` (the phase's deadline bounds the wait)."""
    while (value := await probe()) <= above:
        await asyncio.sleep(0.2)
    del what
    return value


async def measure_run(
    folder: Path,
    target: Target,
    *,
    clients: int,
    rate: float,
    seconds: float,
    password: str,
    progress: Progress,
) -> Run:
    """K clients at ``rate`` each: the target's steady intake rate and the clients' latency."""
    group = Clients(folder, target, clients, rate, f"{target.name}-{clients}-{int(rate)}")
    start_amount = await target.arrived()
    await group.start(password)
    try:
        await _wait_for(target.arrived, start_amount, "first ticks at the target")
        await asyncio.sleep(_WARMUP_S)
        t0, a0 = time.monotonic(), await target.arrived()
        progress.say(f"  {target.name}: {clients} client(s) at {rate:,.0f} ticks/s each ...")
        await asyncio.sleep(seconds)
        t1, a1 = time.monotonic(), await target.arrived()
    finally:
        stats = await group.stop()
    end_amount = await target.arrived()
    acked = sum(int(s.get("link", {}).get("ticks_acked", 0)) for s in stats)
    window = target.ticks_of(a1 - a0, acked, end_amount - start_amount)
    worst: dict[str, float] = {}
    for s in stats:
        lat = s.get("monitor", {}).get("latency", {}).get("collector_to_ack", {})
        if lat and lat.get("p99_ms", 0) >= worst.get("p99", -1):
            worst = {
                "p50": round(lat["p50_ms"], 2),
                "p99": round(lat["p99_ms"], 2),
                "max": round(lat["max_ms"], 2),
            }
    return Run(clients, rate, window / max(t1 - t0, 1e-9), worst, acked)


@contextlib.asynccontextmanager
async def _bridge(folder: Path, settings: Settings, password: str) -> AsyncIterator[BridgeTarget]:
    db = folder / "bridge.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    # An admin may deliver as any client id: the runs make their own.
    UserStore(users_path(db)).add(_USER, password, [], admin=True)
    args = ["app", "backend", "--bridge-port", "0", "--gateway-port", "0", "--hub-port", "0"]
    args += ["--synchronous", settings.synchronous, "--db", str(db)]
    async with server_process("backend", settings.startup_timeout, *args) as line:
        found = [w.strip(",;") for w in line.split() if "://" in w]
        bridge = next(u for u in found if u.startswith("ws"))
        http = [u for u in found if u.startswith("http")]
        yield BridgeTarget([bridge, http[0], http[1]], db)


@contextlib.asynccontextmanager
async def _cluster(folder: Path, settings: Settings) -> AsyncIterator[StreamTarget]:
    cluster = LocalCluster(folder / "nats", size=3)
    try:
        await asyncio.to_thread(cluster.start, settings.startup_timeout)
        yield StreamTarget(cluster)
    finally:
        await asyncio.to_thread(cluster.stop)


_STORED = re.compile(r"stored ([\d,]+) ticks")


async def consumer_phase(target: StreamTarget, folder: Path, ticks_total: int) -> dict[str, Any]:
    """``store --until-idle`` over the whole stream: ticks stored per second."""
    db = folder / "consumer.sqlite"
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "store",
        "--from",
        target.cluster.servers,
        "--db",
        str(db),
        "--stream",
        STREAM,
        "--until-idle",
        "--quiet",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            kill([proc.pid])
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise PhaseError(f"store exited {proc.returncode}: {err.decode()[-200:].strip()}")

    def rows() -> tuple[int, int]:
        with TickStore(db) as store:
            stats = store.stats()
            return int(stats["ticks_stored"]), int(stats["batches_stored"])

    ticks, _ = await asyncio.to_thread(rows)
    if ticks != ticks_total:
        raise PhaseError(
            f"the consumer stored {ticks:,} ticks, the clients had {ticks_total:,} acked"
        )
    return {
        "ticks": ticks,
        "elapsed_s": round(elapsed, 2),
        "ticks_per_s": round(ticks / elapsed),
        "summary": out.decode().strip().splitlines()[-1:] or [""],
    }


async def bench_scale(settings: Settings, clients: tuple[int, ...] = CLIENTS) -> dict[str, Any]:
    """The document ``bench scale`` prints (see the module docstring)."""
    progress = Progress()
    failed: list[str] = []
    password = secrets.token_urlsafe(16)
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    result: dict[str, Any] = {"seconds": settings.seconds, "clients": list(clients)}
    deadline = settings.startup_timeout + settings.seconds * 4 + 90
    try:
        for opened in (_bridge(folder / "bridge", settings, password), _cluster(folder, settings)):
            async with opened as target:
                runs: list[dict[str, Any]] = []
                for k in clients:
                    for rate, kind in ((FULL_RATE, "full"), (FIXED_RATE, "fixed")):
                        run = await run_phase(
                            f"{target.name}_{kind}_k{k}",
                            deadline * max(1, k // 2),
                            lambda t=target, k=k, r=rate: measure_run(  # type: ignore[misc]
                                folder,
                                t,
                                clients=k,
                                rate=r,
                                seconds=settings.seconds,
                                password=password,
                                progress=progress,
                            ),
                            progress,
                            failed,
                        )
                        if run is not None:
                            runs.append({"kind": kind, **run.as_dict()})
                result[target.name] = runs
                if isinstance(target, StreamTarget):
                    total = sum(r["ticks_acked"] for r in runs)
                    result["consumer"] = await run_phase(
                        "consumer",
                        deadline * 2,
                        lambda t=target, n=total: consumer_phase(t, folder, n),  # type: ignore[misc]
                        progress,
                        failed,
                    )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result["failed"] = failed
    return result
