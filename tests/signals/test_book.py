"""The pure signal book: states, duplicates, expiry, auto vs manual, restart rules, and
the value rules every side applies to a signal."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.protocol.codec import Signal
from app.protocol.signal_rules import signal_problem
from app.trading.intent import ExecutionReport, OrderIntent, Origin, Outcome, Side
from app.trading.signals import SignalBook, SignalEntry, SignalError
from app.trading.view import SignalState

T0 = 1_760_000_000_000


def sig(
    sid: str = "s1",
    source: str = "svc",
    *,
    valid_ms: int = 60_000,
    volume: float | None = 0.1,
    risk_pct: float | None = None,
    side: str = "buy",
) -> Signal:
    return Signal(
        id=sid,
        source=source,
        symbol="EURUSD",
        side=side,
        valid_until_ms=T0 + valid_ms,
        created_at_ms=T0,
        volume=volume,
        risk_pct=risk_pct,
        sl=1.0900 if side == "buy" else 1.1100,
        tp=1.1100 if side == "buy" else 1.0900,
        price=1.1000,
        comment="test",
    )


def report(intent: OrderIntent, outcome: Outcome = Outcome.EXECUTED) -> ExecutionReport:
    return ExecutionReport(
        intent.request_id,
        outcome,
        "done",
        retcode=10009,
        position=42,
        price=1.1001,
        slippage_points=1.0,
    )


def test_a_manual_signal_waits_then_executes_once_with_its_latencies() -> None:
    book = SignalBook()
    arrival = book.receive(sig(), T0 + 15)
    assert arrival.entry is not None
    assert arrival.entry.state is SignalState.WAITING
    assert arrival.entry.receive_latency_ms == 15
    assert book.accept("s1", T0 + 100).state is SignalState.ACCEPTED
    intent = book.start("s1", T0 + 100)
    assert isinstance(intent, OrderIntent)
    assert (intent.origin, intent.source, intent.signal_id) == (Origin.SIGNAL, "svc", "s1")
    assert (intent.side, intent.volume, intent.sl, intent.tp) == (Side.BUY, 0.1, 1.09, 1.11)
    assert book.get("s1").request_id == intent.request_id
    done = book.finish("s1", report(intent), T0 + 130)
    assert done.state is SignalState.EXECUTED
    assert done.execute_latency_ms == 130 - 15
    outcome = done.outcome()
    assert (outcome.outcome, outcome.ticket, outcome.price) == ("executed", 42, 1.1001)
    assert outcome.latency_ms == 115.0
    with pytest.raises(SignalError, match="is executed"):
        book.start("s1", T0 + 200)


def test_an_automatic_source_is_accepted_at_arrival() -> None:
    book = SignalBook(auto_sources={"auto-src"})
    assert book.receive(sig("a", "auto-src"), T0).entry.state is SignalState.ACCEPTED  # type: ignore[union-attr]
    assert book.receive(sig("m", "other"), T0).entry.state is SignalState.WAITING  # type: ignore[union-attr]


def test_a_duplicate_id_changes_nothing_and_is_counted() -> None:
    book = SignalBook()
    book.receive(sig(), T0)
    book.dismiss("s1", T0 + 1)
    again = book.receive(sig(volume=5.0), T0 + 2)
    assert again.duplicate
    assert book.get("s1").state is SignalState.DISMISSED
    assert book.get("s1").signal.volume == 0.1
    assert book.snapshot().duplicates == 1


def test_expired_at_arrival_and_while_waiting_say_why() -> None:
    book = SignalBook()
    late = book.receive(sig("late", valid_ms=1_000), T0 + 1_500).entry
    assert late is not None
    assert late.state is SignalState.EXPIRED
    assert "500 ms before it arrived" in late.reason
    book.receive(sig("w", valid_ms=1_000), T0 + 10)
    assert book.expire(T0 + 999) == []
    (gone,) = book.expire(T0 + 1_000)
    assert gone.state is SignalState.EXPIRED
    assert "waiting for the trader" in gone.reason
    with pytest.raises(SignalError, match="is expired"):
        book.accept("w", T0 + 1_001)


def test_accepting_too_late_expires_instead() -> None:
    book = SignalBook()
    book.receive(sig(valid_ms=1_000), T0)
    assert book.accept("s1", T0 + 1_000).state is SignalState.EXPIRED


def test_risk_pct_is_refused_with_the_reason() -> None:
    book = SignalBook(auto_sources={"svc"})
    book.receive(sig(volume=None, risk_pct=1.0), T0)
    entry = book.start("s1", T0)
    assert isinstance(entry, SignalEntry)
    assert entry.state is SignalState.REFUSED
    assert "risk_pct not supported yet" in entry.reason


def test_an_invalid_signal_is_refused_at_arrival() -> None:
    book = SignalBook(auto_sources={"svc"})
    entry = book.receive(sig(side="hold"), T0).entry
    assert entry is not None
    assert entry.state is SignalState.REFUSED
    assert "'side' must be 'buy' or 'sell'" in entry.reason


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        (Outcome.REFUSED, SignalState.REFUSED),
        (Outcome.REJECTED, SignalState.REJECTED),
        (Outcome.UNKNOWN, SignalState.REJECTED),
        (Outcome.PLACED, SignalState.EXECUTED),
    ],
)
def test_the_execution_outcome_decides_the_state(outcome: Outcome, state: SignalState) -> None:
    book = SignalBook(auto_sources={"svc"})
    book.receive(sig(), T0)
    intent = book.start("s1", T0)
    assert isinstance(intent, OrderIntent)
    assert book.finish("s1", report(intent, outcome), T0 + 5).state is state


def test_an_order_in_flight_at_a_crash_is_never_sent_again() -> None:
    book = SignalBook(auto_sources={"svc"})
    book.receive(sig(), T0)
    intent = book.start("s1", T0)
    assert isinstance(intent, OrderIntent)
    restored = SignalBook(auto_sources={"svc"}, entries=list(book))
    entry = restored.get("s1")
    assert entry.state is SignalState.REJECTED
    assert intent.request_id in entry.reason
    assert restored.receive(sig(), T0 + 1).duplicate


def test_seen_ids_outlive_their_entries() -> None:
    book = SignalBook(seen=["old"])
    assert book.receive(sig("old"), T0).duplicate


def test_the_snapshot_is_newest_first_and_versioned() -> None:
    book = SignalBook()
    book.receive(sig("a"), T0)
    book.receive(sig("b"), T0 + 1)
    snap = book.snapshot()
    assert [e.id for e in snap.entries] == ["b", "a"]
    book.dismiss("a", T0 + 2)
    assert book.snapshot().version > snap.version
    before = snap.get("a")
    assert before is not None
    assert before.state is SignalState.WAITING
    assert book.snapshot().by_state(SignalState.DISMISSED)[0].id == "a"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"volume": 0.0}, "'volume' must be"),
        ({"volume": -1.0}, "'volume' must be"),
        ({"volume": None}, "exactly one of"),
        ({"risk_pct": 1.0}, "exactly one of"),
        ({"side": "long"}, "'side'"),
        ({"symbol": ""}, "'symbol'"),
        ({"sl": 1.2}, "wrong sides"),
        ({"tp": 1.05, "sl": None}, "must be above 'price'"),
        ({"valid_until_ms": T0}, "must be after"),
        ({"comment": "x\x1b[2J"}, "'comment'"),
        ({"sl": float("nan")}, "'sl' must be a positive number"),
    ],
)
def test_value_rules(change: dict[str, object], problem: str) -> None:
    changed = msgspec.structs.replace(sig(), **change)
    assert problem in (signal_problem(changed) or "")
    assert signal_problem(sig()) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["recv", "accept", "dismiss", "start", "finish", "expire"]),
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 3_000),
        ),
        max_size=40,
    )
)
def test_whatever_happens_each_signal_starts_at_most_once(
    events: list[tuple[str, str, int]],
) -> None:
    book = SignalBook(auto_sources={"auto"})
    started: list[str] = []
    intents: dict[str, OrderIntent] = {}
    now = T0
    for kind, sid, dt in events:
        now += dt
        try:
            if kind == "recv":
                book.receive(sig(sid, "auto" if sid == "a" else "svc", valid_ms=2_000), now)
            elif kind == "accept":
                book.accept(sid, now)
            elif kind == "dismiss":
                book.dismiss(sid, now)
            elif kind == "start":
                got = book.start(sid, now)
                if isinstance(got, OrderIntent):
                    started.append(sid)
                    intents[sid] = got
            elif kind == "finish" and sid in intents:
                book.finish(sid, report(intents[sid]), now)
            else:
                book.expire(now)
        except SignalError:
            pass
        for entry in book:
            assert entry.state is not SignalState.EXECUTING or entry.id in intents
    assert len(started) == len(set(started))
