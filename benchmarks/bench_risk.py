"""Risk check cost per order, in microseconds (p50/p99), as JSON.

Why: the risk engine sits in front of every ``order_send`` (issue 16: signal → order
p99 ≤ 10 ms), so its cost must be a rounding error of that, audit included. Phases,
each on the same intent and a realistic account view (20 positions, 5 pending orders):

- ``baseline``: a no-op check returning a fixed decision (the cost of the call and the
  timer itself);
- ``engine``: :meth:`RiskEngine.check`, no journal;
- ``engine_audit_queued``: with the :class:`AuditJournal` (the record is handed to the
  writer thread; the thread redacts, writes and fsyncs the real audit log meanwhile);
- ``engine_audit_inline``: the audit record written in the caller, fsync included
  (what the queue saves; fewer orders, it is slow).

The clock is a :class:`ManualClock` stepped 10 ms between orders outside the timed part,
so the order-rate bucket never refuses and every order takes the full (accepted) path.
The queued phase checks afterwards that the audit file holds one line per order.
Progress goes to stderr, the JSON report to stdout; each phase stops at its share of
``--deadline``; exit 1 when a check refuses or audit lines are missing.
Run from the repository root: ``python benchmarks/bench_risk.py [--orders 20000]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.clock import ManualClock
from app.config.trading_schema import RiskLimitsConfig, TradingConfig
from app.security.audit import AuditLog
from app.servertime import NY_CLOSE
from app.terminal.trade_constants import ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
from app.terminal.trade_types import TradeOrder, TradePosition
from app.trading.account_view import AccountView, VolumeRule
from app.trading.intent import Action, OrderIntent, Origin, Side
from app.trading.risk import RiskDecision, RiskEngine, RiskJournal, Rule, TradingState
from app.trading.risk_audit import AuditJournal, decision_details

Check = Callable[[OrderIntent, AccountView], RiskDecision]


def log(message: str) -> None:
    print(f"[bench_risk] {message}", file=sys.stderr, flush=True)


def make_view(now: float) -> AccountView:
    symbols = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "AUDUSD")

    def position(t: int) -> TradePosition:
        row = [t, 0, 0, 0, 0, t % 2, 0, t, 0, 0.1, 1.1, 0.0, 0.0, 1.1, 0.0, 0.0]
        return TradePosition._make([*row, symbols[t % 5], "", ""])

    def pending(t: int) -> TradeOrder:
        row = [t, 0, 0, 0, 0, 0, 2 + t % 2, 0, 0, 1, 0, 0, 0, 0, 0.1, 0.1, 1.0, 0.0, 0.0]
        return TradeOrder._make([*row, 1.1, 0.0, symbols[t % 5], "", ""])

    positions = tuple(position(t) for t in range(1, 21))
    orders = tuple(pending(t) for t in range(100, 105))
    return AccountView(
        login=5001,
        server="Bench-Demo",
        currency="USD",
        trade_mode=0,
        margin_mode=ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
        balance=10_000.0,
        equity=10_000.0,
        margin_free=9_000.0,
        day_start_utc_s=NY_CLOSE.server_midnight_utc_s(int(now)),
        time_utc_s=now,
        positions=positions,
        orders=orders,
        symbols={s: VolumeRule(0.01, 100.0, 0.01) for s in symbols},
    )


def percentile(sorted_ns: list[int], q: float) -> float:
    index = min(len(sorted_ns) - 1, max(0, round(q / 100 * (len(sorted_ns) - 1))))
    return sorted_ns[index] / 1000


def run_phase(
    name: str, check: Check, clock: ManualClock, orders: int, deadline: float
) -> dict[str, object]:
    intent = OrderIntent(Action.OPEN, "EURUSD", Side.BUY, 0.1, Origin.SIGNAL, source="bench")
    view = make_view(clock.time())
    samples: list[int] = []
    refused = 0
    timer = time.perf_counter_ns
    for _ in range(orders):
        if time.monotonic() > deadline:
            break
        clock.advance(0.01)
        start = timer()
        decision = check(intent, view)
        samples.append(timer() - start)
        refused += not decision.accepted
    samples.sort()
    result: dict[str, object] = {
        "orders": len(samples),
        "complete": len(samples) == orders,
        "refused": refused,
        "p50_us": round(percentile(samples, 50), 2),
        "p99_us": round(percentile(samples, 99), 2),
        "max_us": round(samples[-1] / 1000, 1),
    }
    log(f"{name}: {result}")
    return result


class InlineJournal:
    """Writes the audit record in the caller: the cost the queue keeps off the path."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def decision(
        self, intent: OrderIntent, decision: RiskDecision, view: AccountView, time_utc_s: float
    ) -> None:
        self._audit.record(
            "trade.decision",
            intent.symbol,
            "success" if decision.accepted else "failure",
            **decision_details(intent, decision, view, time_utc_s),
        )

    def state_changed(self, change: object) -> None:  # pragma: no cover - no change here
        pass

    def consent(self, granted: bool, time_utc_s: float) -> None:  # pragma: no cover
        pass


def engine(clock: ManualClock, journal: RiskJournal | None = None) -> RiskEngine:
    limits = RiskLimitsConfig(
        max_volume_per_order=10,
        max_exposure_per_symbol=10_000,
        max_open_positions=10_000,
        max_orders_per_second=1000,
    )
    return RiskEngine(TradingConfig(risk=limits), clock, journal)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000, help="orders per fast phase")
    parser.add_argument("--audit-orders", type=int, default=5_000, help="queued audit phase")
    parser.add_argument("--inline-orders", type=int, default=300, help="inline audit phase")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds for the run")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the audit file")
    args = parser.parse_args(argv)
    if min(args.orders, args.audit_orders, args.inline_orders) < 1 or args.deadline <= 0:
        print("bench_risk: order counts and the deadline must be above 0", file=sys.stderr)
        return 2
    share = args.deadline / 5
    report: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "view": {"positions": 20, "pending_orders": 5},
    }
    failures: list[str] = []
    fixed = RiskDecision(True, "accepted", Rule.ACCEPTED, TradingState.ACTIVE)

    def noop(intent: OrderIntent, view: AccountView) -> RiskDecision:
        return fixed

    clock = ManualClock()
    phases: dict[str, dict[str, object]] = {}
    phases["baseline"] = run_phase("baseline", noop, clock, args.orders, time.monotonic() + share)
    phases["engine"] = run_phase(
        "engine", engine(clock).check, clock, args.orders, time.monotonic() + share
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        queued_path = Path(tmp) / "queued" / "audit.jsonl"
        journal = AuditJournal(AuditLog(queued_path, max_bytes=1 << 30))
        phases["engine_audit_queued"] = run_phase(
            "engine_audit_queued",
            engine(clock, journal).check,
            clock,
            args.audit_orders,
            time.monotonic() + share,
        )
        started = time.monotonic()
        flushed = journal.flush(timeout=max(1.0, share))
        journal.close()
        lines = len(queued_path.read_bytes().splitlines()) if queued_path.exists() else 0
        written = phases["engine_audit_queued"]["orders"]
        phases["engine_audit_queued"]["audit_drain_s"] = round(time.monotonic() - started, 2)
        phases["engine_audit_queued"]["audit_lines"] = lines
        if not flushed or lines != written:
            failures.append(f"audit file has {lines} lines for {written} decisions")
        inline_path = Path(tmp) / "inline" / "audit.jsonl"
        phases["engine_audit_inline"] = run_phase(
            "engine_audit_inline",
            engine(clock, InlineJournal(AuditLog(inline_path, max_bytes=1 << 30))).check,
            clock,
            args.inline_orders,
            time.monotonic() + share,
        )
    for name, result in phases.items():
        if result["refused"]:
            failures.append(f"{name}: {result['refused']} orders refused")
        if not result["orders"]:
            failures.append(f"{name}: no order measured before its deadline")
    report["phases"] = phases
    report["failures"] = failures
    print(json.dumps(report, indent=2))
    if failures:
        log("FAILED: " + "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
