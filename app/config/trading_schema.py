"""The ``trading`` section of the settings: risk limits, real-account consent, automation.

Kept apart from :mod:`app.config.schema` because it is the one section that can cost the
user money: its defaults are the safe ones (no automatic execution, no real account,
small limits a demo account cannot hurt itself with), and every field is validated here
so the risk engine (:mod:`app.trading.risk`) never sees a nonsensical limit. The section
syncs with the gateway like every other setting.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field, field_validator

from app.config.section import Section

__all__ = ["RiskLimitsConfig", "TradingConfig", "check_allowed_symbols_captured"]


class RiskLimitsConfig(Section):
    max_volume_per_order: float = Field(
        1.0, gt=0, le=1000, description="Largest volume of one order, in lots."
    )
    max_exposure_per_symbol: float = Field(
        5.0,
        gt=0,
        le=10_000,
        description="Largest net open volume per symbol (buy minus sell, in lots).",
    )
    max_open_positions: int = Field(
        20, ge=1, le=10_000, description="Most positions open at once (all symbols)."
    )
    max_daily_loss: float = Field(
        1000.0,
        gt=0,
        description="Equity drop since the day's start (server midnight), in the "
        "account currency, that halts trading until the next day.",
    )
    max_orders_per_second: float = Field(
        5.0, gt=0, le=1000, description="Orders sent per second, at most (all origins)."
    )
    allowed_symbols: list[str] = Field(
        default_factory=list,
        description="Symbols that may be traded; empty allows every captured symbol.",
    )

    @field_validator("allowed_symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        cleaned = [s.strip() for s in v]
        if any(not s for s in cleaned):
            raise ValueError("an allowed symbol is empty")
        seen: set[str] = set()
        for s in cleaned:
            if s in seen:
                raise ValueError(f"{s} is listed twice")
            seen.add(s)
        return cleaned


class TradingConfig(Section):
    enabled: bool = Field(
        True,
        description="Trading from this client at all (orders, signals). Off: watch only.",
    )
    allow_real_account: bool = Field(
        False,
        description="Allow orders on a real (live-money) account; the window still asks "
        "once per session. Demo and contest accounts need nothing.",
    )
    auto_execute_sources: list[str] = Field(
        default_factory=list,
        description="Signal sources whose signals execute without asking (through the "
        "risk engine); every other signal waits for the trader.",
    )
    order_timeout_s: float = Field(
        10.0,
        gt=0,
        le=120,
        description="How long to wait for the terminal's answer to an order before "
        "checking its orders and deals for it.",
    )
    default_deviation: int = Field(
        10, ge=0, le=10_000, description="Allowed slippage of market orders, in points."
    )
    risk: RiskLimitsConfig = Field(
        default_factory=RiskLimitsConfig, description="Limits the risk engine enforces."
    )


def check_allowed_symbols_captured(trading: TradingConfig, captured: Iterable[str]) -> None:
    """An allowed symbol no terminal captures could never be traded (no prices, no
    terminal to send it to): almost always a typo, so the settings say so at once."""
    known = set(captured)
    missing = [s for s in trading.risk.allowed_symbols if s not in known]
    if missing:
        raise ValueError(
            f"trading.risk.allowed_symbols: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} captured by no terminal"
        )
