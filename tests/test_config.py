"""Settings errors name the field, the value and the rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.config import ClientConfig, ConfigError, load_config, parse_config
from app.runtime import plan_workers


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"pool": {"size": 0}}, "pool.size: 0 is below the minimum 1"),
        ({"pool": {"size": 500}}, "pool.size: 500 is above the maximum 64"),
        ({"pool": {"sise": 3}}, "pool.sise: unknown setting"),
        ({"cache": {"ticks_per_symbol": "many"}}, "cache.ticks_per_symbol: 'many'"),
        (
            {"terminals": [{"symbols": ["EURUSD", "EURUSD"]}]},
            "terminals.0.symbols: EURUSD is listed twice",
        ),
        (
            {"terminals": [{"name": "a"}, {"name": "b", "symbols": ["EURUSD"]}]},
            "symbol EURUSD is captured by both a and b",
        ),
        ({"terminals": [{"rates": {"EURUSD": 0}}]}, "EURUSD: 0 ticks/s is outside"),
    ],
)
def test_validation_errors_say_what_is_wrong(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^x\.json: ") as info:
        parse_config(json.dumps(doc), "x.json")
    assert message in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.json")


def test_shipped_default_config_is_valid_and_equals_the_defaults() -> None:
    shipped = Path(__file__).resolve().parents[1] / "config" / "client-config.json"
    assert load_config(shipped) == ClientConfig()


def test_workers_are_spread_over_terminals_in_proportion_and_never_empty() -> None:
    cfg = ClientConfig.model_validate(
        {
            "terminals": [
                {"name": "a", "symbols": ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]},
                {"name": "b", "symbols": ["BTCUSD"]},
            ],
            "pool": {"size": 5},
        }
    )
    specs = plan_workers(cfg)
    assert [(s.terminal.name, s.symbols) for s in specs] == [
        ("a", ("EURUSD",)),
        ("a", ("GBPUSD",)),
        ("a", ("USDJPY",)),
        ("a", ("XAUUSD",)),
        ("b", ("BTCUSD",)),
    ]
    assert [s.worker_id for s in specs] == [1, 2, 3, 4, 5]
    small = ClientConfig.model_validate({"pool": {"size": 2}})
    assert [s.symbols for s in plan_workers(small)] == [
        ("EURUSD", "USDJPY", "BTCUSD"),
        ("GBPUSD", "XAUUSD"),
    ]
