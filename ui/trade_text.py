"""How trading values are written in the window: order types, server times, money, the
answer to an intent. One place, so the Trade and History tabs, the Signals panel, the New
Order dialog and the one-click bar say the same thing the same way (MT5's words)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.trading.intent import ExecutionReport, Outcome
from app.trading.view import (
    ORDER_TYPE_TEXT,
    SymbolTerms,
    TradeOrder,
    TradePosition,
    TradingSnapshot,
    describe_retcode,
)
from ui.panels._format import MISSING, price_decimals
from ui.theme import Theme

#: Theme colour name of each outcome (the dialog's result line, the status bar).
OUTCOME_COLOUR: dict[Outcome, str] = {
    Outcome.EXECUTED: "ok",
    Outcome.PLACED: "ok",
    Outcome.REFUSED: "warn",
    Outcome.REJECTED: "bad",
    Outcome.UNKNOWN: "warn",
}


def order_type_text(kind: int) -> str:
    return ORDER_TYPE_TEXT.get(kind, f"type {kind}")


def server_time_text(seconds: int) -> str:
    """A trade time as MT5 writes it (``2026.12.05 10:31:02``): the terminal reports it in
    server time already, so it is formatted as is, never moved to the machine's zone."""
    if seconds <= 0:
        return MISSING
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y.%m.%d %H:%M:%S")


def money(value: float) -> str:
    """``12 345.67``: MT5 groups thousands with a thin space in the Toolbox."""
    return f"{value:,.2f}".replace(",", " ")


def digits_of(snap: TradingSnapshot | None, symbol: str, *prices: float) -> int:
    """The symbol's digits from its terms; else guessed from the prices at hand."""
    terms = snap.symbols.get(symbol) if snap is not None else None
    if terms is not None:
        return terms.digits
    return max((price_decimals(p) for p in prices if p), default=5)


def stop_text(value: float, digits: int) -> str:
    """S/L or T/P: MT5 stores "none" as 0."""
    return f"{value:.{digits}f}" if value else ""


def profit_colour(value: float, theme: Theme) -> str | None:
    if value > 0:
        return theme.up
    if value < 0:
        return theme.down
    return None


def position_profit(snap: TradingSnapshot, position: TradePosition) -> float:
    """The live profit the core computed, else what the terminal last reported."""
    return snap.live_profit.get(position.ticket, position.profit)


def order_line(order: TradeOrder) -> str:
    return (
        f"#{order.ticket} {order_type_text(order.type)} {order.volume_current:g} "
        f"{order.symbol} at {order.price_open:g}"
    )


def report_text(report: ExecutionReport) -> str:
    """One line: what happened, the terminal's code and text, the ticket and price.

    ``report.message`` already holds ``describe_retcode`` text when the terminal
    answered; the retcode is added only when the message does not name it."""
    parts = [report.outcome.value]
    message = report.message
    if report.retcode is not None and str(report.retcode) not in message:
        code = describe_retcode(report.retcode)
        message = f"{code} {message}".strip() if message else code
    if message:
        parts.append(message)
    ticket = report.position or report.order or report.deal
    if ticket:
        parts.append(f"#{ticket}")
    if report.price:
        parts.append(f"at {report.price:g}")
    if report.latency_ms is not None:
        parts.append(f"{report.latency_ms:.0f} ms")
    return " · ".join(parts)


def volume_problem(volume: float, terms: SymbolTerms | None) -> str:
    """Why ``volume`` would be refused by the terminal (INVALID_VOLUME), or ""."""
    if volume <= 0:
        return "Volume must be above 0"
    if terms is None:
        return ""
    if volume < terms.volume_min - 1e-9 or volume > terms.volume_max + 1e-9:
        return f"Volume must be between {terms.volume_min:g} and {terms.volume_max:g}"
    steps = volume / terms.volume_step
    if abs(steps - round(steps)) > 1e-6:
        return f"Volume must be a multiple of {terms.volume_step:g}"
    return ""
