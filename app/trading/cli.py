"""``trading-client trade``: orders and account reads from the command line.

Each command starts the configured terminal's worker (one connection, no backend link,
no backfill), goes through the same :class:`~app.trading.router.OrderRouter` and risk
engine as the window, prints the outcome with the retcode's name and text, and exits
0 when the order was executed or placed, 1 when it was refused or rejected, 3 when its
outcome is not known yet (it is looked up before the next order, never re-sent), 2 on
bad input. ``--json`` prints the named tuples' fields as keys.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from app.config import ClientConfig, load_config
from app.config.store import ConfigStore, default_config_path
from app.connector import WorkerState
from app.export.api import parse_time
from app.runtime import Runtime
from app.security.audit import AuditLog
from app.security.logins import (
    needs_vault,
    open_configured_vault,
    prompt_master_password,
    terminal_passwords,
)
from app.security.redact import escape_controls
from app.terminal.trade_constants import POSITION_TYPE_BUY
from app.trading.intent import Action, ExecutionReport, OrderIntent, Origin, Outcome, Side
from app.trading.service import TRADING_KINDS, Trading

EXAMPLES = """examples:
  trading-client trade buy EURUSD 0.1 --sl 1.05 --tp 1.2
  trading-client trade sell XAUUSD 0.01 --deviation 20 --terminal sim
  trading-client trade positions --json
  trading-client trade close 123456 --volume 0.05
  trading-client trade history --from 2026-12-01 --to "2026-12-05 12:00"
  trading-client trade account

Exit codes: 0 executed/placed (or read), 1 refused/rejected, 2 bad input,
3 outcome unknown (looked up before the next order, never re-sent).
Times of history are server time, as MT5 shows them.
"""

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT, EXIT_UNKNOWN = 0, 1, 2, 3

#: Each action's own examples (its --help ends with them).
_ACTION_EXAMPLES = {
    "buy": "trade buy EURUSD 0.1 --sl 1.05 --tp 1.2 --deviation 20",
    "sell": "trade sell XAUUSD 0.01 --terminal sim --json",
    "close": "trade close 123456 --volume 0.05",
    "positions": "trade positions --json",
    "orders": "trade orders",
    "account": "trade account --json",
    "history": 'trade history --from 2026-12-01 --to "2026-12-05 12:00"',
}


class TradeInputError(ValueError):
    """Bad input to a trade command: one line, exit 2."""


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def add_trade_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trade = sub.add_parser(
        "trade",
        help="place and close orders, read positions, orders, history and the account",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = trade.add_subparsers(dest="trade_command", metavar="ACTION", required=True)

    def action(name: str, what: str) -> argparse.ArgumentParser:
        return cmds.add_parser(
            name,
            parents=[common],
            help=what,
            epilog=f"examples:\n  trading-client {_ACTION_EXAMPLES[name]}\n",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="settings file (default: the user's)")
    common.add_argument("--terminal", metavar="NAME", help="terminal (default: the first)")
    common.add_argument("--json", action="store_true", help="print JSON (fields as keys)")
    for side in ("buy", "sell"):
        p = action(side, f"{side} at the market")
        p.add_argument("symbol")
        p.add_argument("volume", type=_positive, help="lots")
        p.add_argument("--sl", type=_positive, metavar="PRICE", help="stop loss")
        p.add_argument("--tp", type=_positive, metavar="PRICE", help="take profit")
        p.add_argument("--deviation", type=int, metavar="POINTS", help="allowed slippage")
    close = action("close", "close a position at the market")
    close.add_argument("ticket", type=int)
    close.add_argument("--volume", type=_positive, help="part of the position (lots)")
    for name, what in (("positions", "open positions"), ("orders", "pending orders")):
        action(name, f"list {what}")
    action("account", "balance, equity, margin ...")
    hist = action("history", "deals and orders of a period")
    hist.add_argument("--from", dest="start", metavar="TIME", help="server time (default: -7 d)")
    hist.add_argument("--to", dest="end", metavar="TIME", help="server time (default: now)")


def _config(path: Path | None) -> ClientConfig:
    if path is not None:
        return load_config(path)
    return ConfigStore(default_config_path()).load().config


def _one_terminal(config: ClientConfig, name: str | None) -> ClientConfig:
    """The settings with only the trading terminal, one connection, nothing else running."""
    traders = [t for t in config.terminals if t.kind in TRADING_KINDS]
    chosen = next((t for t in traders if t.name == name), None) if name else None
    if name and chosen is None:
        names = ", ".join(t.name for t in traders) or "none"
        raise TradeInputError(f"no trading terminal named {name!r} (configured: {names})")
    chosen = chosen or (traders[0] if traders else None)
    if chosen is None:
        raise TradeInputError("no terminal that trades is configured (replays do not)")
    if not config.trading.enabled:
        raise TradeInputError("trading is off in the settings (trading.enabled)")
    data = config.model_dump()
    data["terminals"] = [chosen.model_dump()]
    data["pool"]["size"] = 1
    data["backend"]["enabled"] = False
    data["backfill"]["enabled"] = False
    data["monitor"]["enabled"] = False
    return ClientConfig.model_validate(data)


def _passwords(config: ClientConfig) -> dict[str, str]:
    if not needs_vault(config):
        return {}
    audit = AuditLog(config.security.audit_log)
    return terminal_passwords(
        config, open_configured_vault(config.security, prompt_master_password, audit)
    )


def run_trade(args: argparse.Namespace) -> int:
    try:
        config = _one_terminal(_config(args.config), args.terminal)
        span = _span(args.start, args.end) if args.trade_command == "history" else (0, 0)
    except (TradeInputError, ValueError) as exc:
        print(f"error: {escape_controls(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return asyncio.run(_trade(config, args, span))


def _span(start: str | None, end: str | None) -> tuple[int, int]:
    """Server-time seconds; the default end is a day ahead (any server zone's "now")."""
    now = int(time.time())
    first = parse_time(start) // 1000 if start else now - 7 * 86400
    last = parse_time(end) // 1000 if end else now + 86400
    if first >= last:
        raise TradeInputError(f"--from {start} is not before --to {end}")
    return first, last


async def _trade(config: ClientConfig, args: argparse.Namespace, span: tuple[int, int]) -> int:
    runtime = Runtime(config, passwords=_passwords(config))
    trading = runtime.trading
    assert trading is not None  # _one_terminal kept a trading terminal
    terminal = config.terminals[0].name
    await runtime.pool.start()
    consumer = asyncio.create_task(runtime.collector.consume(runtime.handoff))
    try:
        error = await _connected(runtime, terminal, config.pool.connect_timeout_s)
        if error:
            print(f"error: {escape_controls(error)}", file=sys.stderr)
            return EXIT_REFUSED
        # What an earlier (killed) run left in flight is settled first, and said.
        for earlier in await trading.router.reconcile(terminal):
            print(
                f"earlier request {earlier.request_id}: {earlier.outcome}: "
                f"{escape_controls(earlier.message)}",
                file=sys.stderr,
            )
        await trading.start(refresh=False)
        return await _command(trading, args, span)
    finally:
        await trading.stop()
        await runtime.pool.stop()
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


async def _connected(runtime: Runtime, terminal: str, timeout: float) -> str:
    """ "" once a worker of ``terminal`` serves calls, else why not."""
    deadline = time.monotonic() + timeout
    while runtime.pool.serving_worker(terminal) is None:
        health = runtime.pool.health()
        if all(w.state is WorkerState.FAILED for w in health):
            return f"terminal {terminal}: {health[0].last_error or 'failed'}"
        if time.monotonic() > deadline:
            return f"terminal {terminal} did not connect within {timeout:g} s"
        await asyncio.sleep(0.05)
    return ""


async def _command(trading: Trading, args: argparse.Namespace, span: tuple[int, int]) -> int:
    cmd, router, book = args.trade_command, trading.router, trading.book()
    if cmd in ("buy", "sell"):
        intent = OrderIntent(
            Action.OPEN,
            args.symbol,
            Side(cmd),
            args.volume,
            Origin.CLI,
            sl=args.sl,
            tp=args.tp,
            deviation=args.deviation
            if args.deviation is not None
            else router.settings.default_deviation,
            source="cli",
        )
        return _print_report(await router.execute(intent), args.json)
    if cmd == "close":
        return _print_report(
            await router.close_position(args.ticket, args.volume, origin=Origin.CLI, source="cli"),
            args.json,
        )
    if cmd == "history":
        deals = await book.deals(*span)
        orders = await book.history_orders(*span)
        if args.json:
            _dump({"deals": [d._asdict() for d in deals], "orders": [o._asdict() for o in orders]})
        else:
            _table("deals", [d._asdict() for d in deals], _DEAL_COLUMNS)
            _table("orders", [o._asdict() for o in orders], _ORDER_COLUMNS)
        return EXIT_OK
    snap = await book.refresh()
    if snap.error:
        print(f"error: {escape_controls(snap.error)}", file=sys.stderr)
        return EXIT_REFUSED
    if cmd == "account":
        assert snap.account is not None
        if args.json:
            _dump(snap.account._asdict())
        else:
            for key in _ACCOUNT_FIELDS:
                print(f"{key:>14}: {getattr(snap.account, key)}")
        return EXIT_OK
    rows = [r._asdict() for r in (snap.positions if cmd == "positions" else snap.orders)]
    if args.json:
        _dump(rows)
    else:
        _table(cmd, rows, _POSITION_COLUMNS if cmd == "positions" else _ORDER_COLUMNS)
    return EXIT_OK


_ACCOUNT_FIELDS = (
    "login", "server", "currency", "trade_mode", "margin_mode", "leverage", "balance",
    "equity", "profit", "margin", "margin_free", "margin_level",
)  # fmt: skip
_POSITION_COLUMNS = ("ticket", "symbol", "type", "volume", "price_open", "sl", "tp",
                     "price_current", "profit", "comment")  # fmt: skip
_ORDER_COLUMNS = ("ticket", "symbol", "type", "state", "volume_initial", "price_open", "sl",
                  "tp", "comment")  # fmt: skip
_DEAL_COLUMNS = ("ticket", "order", "time", "symbol", "type", "entry", "volume", "price",
                 "profit", "position_id", "comment")  # fmt: skip


def _dump(doc: Any) -> None:
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


def _table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    print(f"{title}: {len(rows)}")
    if not rows:
        return
    cells = [[_cell(c, r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def _cell(column: str, value: Any) -> str:
    if column == "type" and isinstance(value, int) and value <= 1:
        return "buy" if value == POSITION_TYPE_BUY else "sell"
    return escape_controls(str(value))


def _print_report(report: ExecutionReport, as_json: bool) -> int:
    if as_json:
        _dump(asdict(report))
    else:
        line = f"{report.outcome}: {escape_controls(report.message)}"
        if report.outcome in (Outcome.EXECUTED, Outcome.PLACED):
            line += f"; order {report.order}, deal {report.deal}, position {report.position}"
            if report.price:
                line += f", {report.volume:g} at {report.price:g}"
            if report.slippage_points is not None:
                line += f", slippage {report.slippage_points:g} points"
        if report.latency_ms is not None:
            line += f" ({report.latency_ms:.1f} ms)"
        print(line)
    if report.outcome in (Outcome.EXECUTED, Outcome.PLACED):
        return EXIT_OK
    return EXIT_UNKNOWN if report.outcome is Outcome.UNKNOWN else EXIT_REFUSED
