"""Settings and an independent view of the simulated broker for the execution tests."""

from __future__ import annotations

import json
import time
from pathlib import Path

from app.config import ClientConfig
from app.terminal.simulated import SimulatedTerminal
from app.terminal.trade_types import TradeDeal
from app.trading.intent import APP_MAGIC, request_id_of


def trading_settings(tmp_path: Path, **trading: object) -> dict[str, object]:
    """One simulated terminal trading 24/7 on an account in ``tmp_path``/broker, faults
    through ``tmp_path``/faults.json; no backend, no backfill, no monitor."""
    return {
        "terminals": [
            {
                "name": "sim",
                "kind": "simulated",
                "symbols": ["EURUSD"],
                "market_hours": "always",
                "control_file": str(tmp_path / "faults.json"),
                "sim_state_dir": str(tmp_path / "broker"),
            }
        ],
        "pool": {"size": 1, "stall_timeout_s": 60, "backoff": {"initial_s": 0.1}},
        "trading": {"order_timeout_s": 2, **trading},
        "backend": {"enabled": False},
        "backfill": {"enabled": False},
        "monitor": {"enabled": False},
    }


def write_settings(tmp_path: Path, **trading: object) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(trading_settings(tmp_path, **trading)))
    return path


def load_settings(tmp_path: Path, **trading: object) -> ClientConfig:
    return ClientConfig.model_validate(trading_settings(tmp_path, **trading))


def broker_deals(config: ClientConfig, request_id: str | None = None) -> list[TradeDeal]:
    """The account's deals as a *fresh* simulated terminal on the same account folder
    reads them: the broker's own record, not anything the client kept. With
    ``request_id``: only the deals that request made (its comment, our magic)."""
    term = SimulatedTerminal.from_spec(config.terminals[0].to_spec(None))
    assert term.initialize()
    try:
        deals = term.history_deals_get(0, int(time.time()) + 3 * 86400) or ()
    finally:
        term.shutdown()
    return [
        d
        for d in deals
        if request_id is None or (d.magic == APP_MAGIC and request_id_of(d.comment) == request_id)
    ]
