"""Order round trip through the worker while capturing 10k ticks/s, printed as JSON.

Three figures for the same market orders (alternating buy and sell of 0.01 lot on a
netting account of the simulated broker, so the book stays flat):

* ``baseline``: ``order_send`` called directly on a simulated terminal in this process
  (what the broker itself costs);
* ``pool_call``: ``ConnectorPool.call("order_send")`` through the worker that also
  captures (pipe, pickling, waiting for the worker's poll round);
* ``router``: ``OrderRouter.execute`` (intent → risk engine → tick read → in-flight journal
  (one fsync) → order_send → report), back to back: each order first waits for the
  account book's read after the previous trade (the risk check must see it);
* ``router_current_book``: the same with the book already read, what a trader's click or
  a signal arriving after a quiet moment costs.

The difference between ``pool_call`` and ``baseline`` is what the process boundary
costs; ``risk_check_us_per_order`` is one ``RiskEngine.check`` (with its audit record).
Progress goes to stderr, the JSON document to stdout; each phase has a deadline and the
exit code is 1 when a phase failed (an order not DONE, a deadline passed, or
the capture rate fell below 80 % of the asked rate).

Run from the repository root: ``python benchmarks/bench_orders.py [--orders 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import ClientConfig
from app.runtime import Runtime
from app.servertime import NY_CLOSE
from app.terminal import trade_constants as tc
from app.terminal.simulated import SimulatedTerminal
from app.trading.account_view import AccountView
from app.trading.intent import Action, OrderIntent, Origin, Outcome, Side

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]
TRADED = "EURUSD"


def progress(text: str) -> None:
    print(f"[bench_orders] {text}", file=sys.stderr, flush=True)


def settings(folder: Path, rate_total: float) -> dict[str, Any]:
    per_symbol = rate_total / len(SYMBOLS)
    return {
        "terminals": [
            {
                "name": "sim",
                "symbols": SYMBOLS,
                "rates": dict.fromkeys(SYMBOLS, per_symbol),
                "market_hours": "always",
                "sim_margin_mode": "netting",
                "sim_balance": 1_000_000,
                "sim_state_dir": str(folder / "broker"),
            }
        ],
        "pool": {"size": 2},
        "trading": {
            "order_timeout_s": 10,
            "risk": {"max_orders_per_second": 1000, "max_open_positions": 10_000},
        },
        "backend": {"enabled": False},
        "backfill": {"enabled": False},
        "monitor": {"enabled": False},
    }


def stats(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {
        "n": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "max_ms": round(float(a.max()), 3),
    }


def request(term: Any, side: int) -> dict[str, Any]:
    tick = term.symbol_info_tick(TRADED)
    return {
        "action": tc.TRADE_ACTION_DEAL,
        "symbol": TRADED,
        "volume": 0.01,
        "type": side,
        "price": tick.ask if side == tc.ORDER_TYPE_BUY else tick.bid,
        "deviation": 50,
        "type_filling": tc.ORDER_FILLING_FOK,
        "magic": 1,
    }


def baseline(config: ClientConfig, orders: int, deadline_s: float) -> list[float]:
    """``order_send`` on a terminal in this process (its own account folder)."""
    spec = config.terminals[0].to_spec(None)
    term = SimulatedTerminal.from_spec(spec)
    assert term.initialize()
    out: list[float] = []
    end = time.monotonic() + deadline_s
    for i in range(orders):
        req = request(term, tc.ORDER_TYPE_BUY if i % 2 == 0 else tc.ORDER_TYPE_SELL)
        t0 = time.perf_counter()
        result = term.order_send(req)
        out.append((time.perf_counter() - t0) * 1000)
        if result is None or result.retcode != tc.TRADE_RETCODE_DONE:
            raise RuntimeError(f"baseline order {i}: {result}")
        if time.monotonic() > end:
            raise TimeoutError(f"baseline: deadline of {deadline_s:g} s passed at order {i}")
    term.shutdown()
    return out


async def through_worker(config: ClientConfig, orders: int, deadline_s: float) -> dict[str, Any]:
    runtime = Runtime(config)
    trading = runtime.trading
    assert trading is not None
    await runtime.start()
    try:
        end = time.monotonic() + deadline_s
        while runtime.pool.serving_worker("sim") is None or not all(
            w.state == "streaming" for w in runtime.pool.health()
        ):
            if time.monotonic() > end:
                raise TimeoutError("workers did not stream before the deadline")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the first polls' catch-up
        t0, n0 = time.perf_counter(), runtime.collector.stats.ticks_total
        pool_ms: list[float] = []
        progress(f"pool call: {orders} orders")
        for i in range(orders):
            tick = await runtime.pool.call("sim", "symbol_info_tick", 10, TRADED)
            side = tc.ORDER_TYPE_BUY if i % 2 == 0 else tc.ORDER_TYPE_SELL
            req = request(_Tick(tick), side)
            s = time.perf_counter()
            result = await runtime.pool.call("sim", "order_send", 10, req)
            pool_ms.append((time.perf_counter() - s) * 1000)
            if result.retcode != tc.TRADE_RETCODE_DONE:
                raise RuntimeError(f"pool order {i}: {result}")
            if time.monotonic() > end:
                raise TimeoutError(f"pool: deadline passed at order {i}")
        progress(f"router: {orders} orders")
        router_ms: list[float] = []
        for i in range(orders):
            side = Side.BUY if i % 2 == 0 else Side.SELL
            intent = OrderIntent(Action.OPEN, TRADED, side, 0.01, Origin.CLI, deviation=50)
            s = time.perf_counter()
            report = await trading.router.execute(intent)
            router_ms.append((time.perf_counter() - s) * 1000)
            if report.outcome is not Outcome.EXECUTED:
                raise RuntimeError(f"router order {i}: {report}")
            if time.monotonic() > end:
                raise TimeoutError(f"router: deadline passed at order {i}")
        progress(f"router, each order on a current account book: {orders} orders")
        quiet_ms: list[float] = []
        book = trading.book("sim")
        for i in range(orders):
            await book.refresh()  # what a signal arriving after a quiet moment meets
            side = Side.BUY if i % 2 == 0 else Side.SELL
            intent = OrderIntent(Action.OPEN, TRADED, side, 0.01, Origin.CLI, deviation=50)
            s = time.perf_counter()
            report = await trading.router.execute(intent)
            quiet_ms.append((time.perf_counter() - s) * 1000)
            if report.outcome is not Outcome.EXECUTED:
                raise RuntimeError(f"router (current book) order {i}: {report}")
            if time.monotonic() > end:
                raise TimeoutError(f"router (current book): deadline passed at order {i}")
        t1, n1 = time.perf_counter(), runtime.collector.stats.ticks_total
        risk_us = risk_cost(runtime, orders * 20)
    finally:
        await runtime.stop()
    return {
        "pool_call": stats(pool_ms),
        "router": stats(router_ms),
        "router_current_book": stats(quiet_ms),
        "risk_check_us_per_order": risk_us,
        "captured_ticks_per_s_meanwhile": round((n1 - n0) / (t1 - t0)),
    }


def risk_cost(runtime: Runtime, n: int) -> float:
    """Microseconds per ``RiskEngine.check`` on the live account (audit record included)."""
    trading = runtime.trading
    assert trading is not None
    snap = trading.book("sim").snapshot()
    assert snap.account is not None
    view = AccountView.of(
        snap.account, NY_CLOSE, time.time(), positions=snap.positions, orders=snap.orders
    )
    intents = [OrderIntent(Action.OPEN, TRADED, Side.BUY, 0.01, Origin.CLI) for _ in range(n)]
    t0 = time.perf_counter()
    for intent in intents:
        trading.risk.check(intent, view)
    return round((time.perf_counter() - t0) / n * 1e6, 1)


class _Tick:
    """``request`` reads the tick from a terminal; here it came through the pool."""

    def __init__(self, tick: Any) -> None:
        self._tick = tick

    def symbol_info_tick(self, symbol: str) -> Any:
        return self._tick


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200, help="orders per measurement")
    parser.add_argument("--rate", type=float, default=10_000, help="ticks/s captured (all)")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per phase")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-orders-"))
    # The in-flight journal and any data files go to the scratch folder, not the user's.
    os.environ["XDG_DATA_HOME"] = str(folder / "data")
    doc: dict[str, Any] = {
        "benchmark": "trading.orders",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "orders": args.orders,
        "asked_ticks_per_s": args.rate,
        "failed": None,
    }
    try:
        progress(f"baseline: {args.orders} orders in this process")
        base_cfg = ClientConfig.model_validate(settings(folder / "baseline", args.rate))
        doc["baseline"] = stats(baseline(base_cfg, args.orders, args.deadline))
        progress(f"through the worker while capturing {args.rate:,.0f} ticks/s")
        cfg = ClientConfig.model_validate(settings(folder / "pool", args.rate))
        doc.update(asyncio.run(through_worker(cfg, args.orders, args.deadline)))
        rate = doc["captured_ticks_per_s_meanwhile"]
        if rate < 0.8 * args.rate:
            doc["failed"] = f"captured {rate:,} ticks/s, below 80 % of {args.rate:,.0f}"
        doc["pool_call_p99_over_baseline_p99_ms"] = round(
            doc["pool_call"]["p99_ms"] - doc["baseline"]["p99_ms"], 3
        )
    except (RuntimeError, TimeoutError) as exc:
        doc["failed"] = str(exc)
    print(json.dumps(doc, indent=1))
    return 1 if doc["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
