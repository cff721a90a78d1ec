"""The ``trading`` settings the risk engine relies on are refused, in one line, when
they could never work: an allowed symbol no terminal captures, one listed twice."""

from __future__ import annotations

import json

import pytest

from app.config import ConfigError, parse_config


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {
                "terminals": [{"symbols": ["EURUSD"]}],
                "trading": {"risk": {"allowed_symbols": ["EURUSD", "EURUSDx"]}},
            },
            "trading.risk.allowed_symbols: EURUSDx is captured by no terminal",
        ),
        (
            {"trading": {"risk": {"allowed_symbols": ["EURUSD", " EURUSD"]}}},
            "trading.risk.allowed_symbols: EURUSD is listed twice",
        ),
        (
            {"trading": {"risk": {"allowed_symbols": [""]}}},
            "trading.risk.allowed_symbols: an allowed symbol is empty",
        ),
    ],
)
def test_impossible_trading_settings_are_one_line(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(doc), "x.json")
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_captured_allowed_symbols_are_kept() -> None:
    doc = {
        "terminals": [{"name": "a", "symbols": ["EURUSD"]}, {"name": "b", "symbols": ["XAUUSD"]}],
        "trading": {"risk": {"allowed_symbols": ["XAUUSD", "EURUSD"]}},
    }
    config = parse_config(json.dumps(doc), "x.json")
    assert config.trading.risk.allowed_symbols == ["XAUUSD", "EURUSD"]
