"""The settings ``trading-client bench gui`` runs the window with (ui/bench.py): every
symbol of the simulated terminal at a given total rate, the embedded backend on free
loopback ports, files in the phase's folder. Here, on the core's side, because it finds
free ports (sockets) and the window's package does no I/O."""

from __future__ import annotations

import os
from pathlib import Path

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.ports import free_ports

SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD")


def gui_bench_config(folder: Path, total_rate: float) -> ClientConfig:
    bridge, gateway, hub = free_ports(3)
    per_symbol = total_rate / len(SYMBOLS)
    return ClientConfig.model_validate(
        {
            # A benchmark loads the pipeline at its rate whatever the day: no weekend.
            "terminals": [
                {
                    "symbols": list(SYMBOLS),
                    "rates": dict.fromkeys(SYMBOLS, per_symbol),
                    "market_hours": "always",
                }
            ],
            "pool": {"size": len(SYMBOLS)},
            "monitor": {"rules": []},
            # Live ticks only: a backfill of earlier runs' gaps would add its own load.
            "backfill": {"enabled": False},
            "backend": {
                "enabled": os.environ.get("BENCH_GUI_BACKEND", "1") == "1",
                "bridge_url": f"ws://127.0.0.1:{bridge}/ws",
                "gateway_url": f"http://127.0.0.1:{gateway}",
                "hub_url": f"http://127.0.0.1:{hub}",
                "embedded": "always",
                "embedded_db": str(folder / "backend.sqlite"),
                "spool_dir": str(folder / "spool"),
            },
        }
    )


def write_gui_bench_config(path: Path, total_rate: float) -> None:
    """Save :func:`gui_bench_config` for a phase run in another process (the cold start)."""
    ConfigStore(path).save(gui_bench_config(path.parent, total_rate))
