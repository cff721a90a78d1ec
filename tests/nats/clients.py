"""A simulated desk publishing to NATS, for the tests: its settings and its process.

Why one place: the end-to-end tests (the runtime sink, scale-out, doctor) all start
clients that differ only in id, seed, rates and a few backend fields; the rest (no hub,
no embedded backend, short backoffs, a spool and span file in the test's folder) must be
the same everywhere, or a test proves something about settings no other test uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.ports import free_ports

CLI = (sys.executable, "-m", "app")


def client_doc(
    tmp_path: Path,
    servers: str,
    *,
    client: str,
    rates: Mapping[str, float],
    seed: int,
    pool_size: int = 1,
    **backend: object,
) -> dict[str, Any]:
    """The settings document of a headless client with sink ``nats`` into ``servers``
    (``backend`` fields override); its hub is a free port nobody listens on."""
    (hub,) = free_ports(1)
    return {
        "terminals": [
            {"symbols": list(rates), "rates": dict(rates), "seed": seed, "market_hours": "always"}
        ],
        "pool": {"size": pool_size, "backoff": {"initial_s": 0.2, "maximum_s": 1.0}},
        "backend": {
            "sink": "nats",
            "nats_url": servers,
            "hub_url": f"http://127.0.0.1:{hub}",
            "client_id": client,
            "embedded": "never",
            "spool_dir": str(tmp_path / "spool"),
            "backoff": {"initial_s": 0.1, "maximum_s": 0.5},
            "nats_ack_timeout_s": 2.0,
            **backend,
        },
        "backfill": {"state_file": str(tmp_path / f"{client}-spans.json"), "save_interval_s": 1},
        "monitor": {"enabled": False},
    }


def write_config(path: Path, doc: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def run_client(config: Path, seconds: float) -> subprocess.Popen[str]:
    """``trading-client run`` on ``config`` as a real process (SIGKILL-able), quiet."""
    env = {**os.environ, "TRADING_CLIENT_MASTER_PASSWORD": "unused-master-pass"}
    return subprocess.Popen(
        [*CLI, "run", "--config", str(config), "--duration", str(seconds), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
