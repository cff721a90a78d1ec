"""The alert engine, driven by a ManualClock: durations, hysteresis, de-duplication."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.clock import ManualClock
from app.monitor.alerts import (
    Alert,
    AlertEngine,
    AlertEvent,
    AlertState,
    Comparison,
    EventKind,
    MetricValue,
    Rule,
    Severity,
    StateRule,
    ThresholdRule,
    default_rules,
    rule_from_dict,
    rule_to_dict,
)

TPS = ThresholdRule(
    "tps_low",
    "tps.total",
    Comparison.BELOW,
    50,
    for_seconds=10,
    clear_threshold=60,
    message="TPS {value:.0f} below {threshold:.0f} for {for_seconds:g} s",
)


def make(
    *rules: Rule, reraise_after: float = 60.0, history_limit: int = 1000
) -> tuple[AlertEngine, ManualClock, list[AlertEvent]]:
    clock = ManualClock()
    engine = AlertEngine(rules, clock, reraise_after=reraise_after, history_limit=history_limit)
    seen: list[AlertEvent] = []
    engine.subscribe(seen.append)
    return engine, clock, seen


def feed(
    engine: AlertEngine,
    clock: ManualClock,
    metric: str,
    values: Iterable[MetricValue],
    step: float = 1.0,
) -> list[AlertEvent]:
    """Evaluate each value, then let ``step`` seconds pass (a 1 Hz timer by default)."""
    out: list[AlertEvent] = []
    for v in values:
        out += engine.evaluate({metric: v})
        clock.advance(step)
    return out


def kinds(events: Iterable[AlertEvent]) -> list[str]:
    return [str(e.kind) for e in events]


# ------------------------------------------------------------------------ duration


def test_raises_only_once_the_condition_held_for_the_whole_duration() -> None:
    engine, clock, seen = make(TPS)
    assert feed(engine, clock, "tps.total", [40] * 10) == []  # t = 0 .. 9
    assert engine.active() == []
    (event,) = engine.evaluate({"tps.total": 40})  # t = 10
    assert event.kind is EventKind.RAISED
    assert event.alert.state is AlertState.RAISED
    assert event.alert.raised_at == clock.time()
    assert seen == [event]
    assert engine.evaluate({"tps.total": 40}) == []  # raised once, not once a second


def test_a_dip_restarts_the_duration() -> None:
    engine, clock, _ = make(TPS)
    feed(engine, clock, "tps.total", [40] * 9 + [51])  # t = 0..8 bad, t = 9 fine
    assert feed(engine, clock, "tps.total", [40] * 10) == []  # t = 10..19: not yet
    assert kinds(engine.evaluate({"tps.total": 40})) == ["raised"]  # t = 20


def test_zero_duration_raises_on_the_first_bad_sample() -> None:
    rule = ThresholdRule("hot", "temp", Comparison.ABOVE, 90)
    engine, _, _ = make(rule)
    assert kinds(engine.evaluate({"temp": 91})) == ["raised"]


def test_a_fast_timer_does_not_miss_the_duration_to_float_rounding() -> None:
    rule = ThresholdRule("hot", "temp", Comparison.ABOVE, 90, for_seconds=1)
    engine, clock, _ = make(rule)
    events = feed(engine, clock, "temp", [95] * 11, step=0.1)  # 0.1 * 10 != 1.0 in floats
    assert kinds(events) == ["raised"]


# ---------------------------------------------------------------------- hysteresis


def test_oscillating_inside_the_hysteresis_band_keeps_one_alert_raised() -> None:
    engine, clock, seen = make(TPS)
    feed(engine, clock, "tps.total", [40] * 11)
    assert kinds(seen) == ["raised"]
    # Around the threshold (50) but never back past the clear threshold (60).
    feed(engine, clock, "tps.total", [45, 55, 48, 59, 49, 59.9, 30, 52] * 5)
    assert kinds(seen) == ["raised"]
    (alert,) = engine.active()
    assert alert.value == 52  # the latest measurement, quietly tracked
    # Reaching the clear threshold is back on the healthy side.
    assert kinds(engine.evaluate({"tps.total": 60})) == ["resolved"]


def test_without_hysteresis_the_alert_resolves_as_soon_as_the_value_is_fine() -> None:
    rule = ThresholdRule("hot", "temp", Comparison.ABOVE, 90)
    engine, _, _ = make(rule)
    engine.evaluate({"temp": 95})
    assert engine.evaluate({"temp": 90.5}) == []  # still above
    assert kinds(engine.evaluate({"temp": 90})) == ["resolved"]  # 'above' is strict


def test_inclusive_thresholds_raise_at_the_threshold_itself() -> None:
    rule = ThresholdRule("spool", "fill", Comparison.ABOVE, 0.8, inclusive=True)
    engine, _, _ = make(rule)
    assert kinds(engine.evaluate({"fill": 0.8})) == ["raised"]
    assert kinds(engine.evaluate({"fill": 0.79})) == ["resolved"]


def test_resolve_records_when_and_at_what_value() -> None:
    engine, clock, _ = make(TPS)
    feed(engine, clock, "tps.total", [40] * 11)
    raised = engine.active()[0]
    clock.advance(5)
    (event,) = engine.evaluate({"tps.total": 100})
    assert event.kind is EventKind.RESOLVED
    alert = event.alert
    assert alert.state is AlertState.RESOLVED
    assert not alert.active
    assert alert.resolved_at == clock.time() == event.at
    assert alert.raised_at == raised.raised_at
    assert alert.value == 100
    assert engine.active() == []
    assert engine.get(alert.id) == alert


# ------------------------------------------------------------ acknowledge, de-dup


def test_acknowledge_is_idempotent_and_clears_the_badge() -> None:
    engine, clock, seen = make(TPS)
    feed(engine, clock, "tps.total", [40] * 11)
    assert engine.unacknowledged_count() == 1
    alert = engine.acknowledge("tps_low")
    assert alert.acknowledged
    assert engine.unacknowledged_count() == 0
    assert len(engine.active()) == 1  # acknowledged is still active
    engine.acknowledge("tps_low")
    assert kinds(seen) == ["raised", "acknowledged"]
    with pytest.raises(KeyError):
        engine.acknowledge("no such alert")


def test_flapping_reopens_one_alert_and_counts_occurrences() -> None:
    rule = ThresholdRule("hot", "temp", Comparison.ABOVE, 90)
    engine, clock, seen = make(rule, reraise_after=60)
    feed(engine, clock, "temp", [95, 85] * 10)
    assert kinds(seen) == ["raised", "resolved"] + ["reopened", "resolved"] * 9
    alert = engine.get("hot")
    assert alert is not None
    assert alert.occurrences == 10
    assert alert.raised_at == 1_700_000_000.0  # the incident started with the first flap
    engine.evaluate({"temp": 95})
    assert [a.id for a in engine.active()] == ["hot"]


def test_acknowledgement_survives_a_reopen_but_not_a_new_incident() -> None:
    rule = ThresholdRule("hot", "temp", Comparison.ABOVE, 90)
    engine, clock, seen = make(rule, reraise_after=60)
    engine.evaluate({"temp": 95})
    engine.acknowledge("hot")
    engine.evaluate({"temp": 80})
    clock.advance(30)
    (reopened,) = engine.evaluate({"temp": 95})
    assert reopened.kind is EventKind.REOPENED
    assert reopened.alert.acknowledged  # the operator already knows about this flap
    assert engine.unacknowledged_count() == 0

    engine.evaluate({"temp": 80})
    clock.advance(61)  # past the cool-down: a new incident
    (raised,) = engine.evaluate({"temp": 95})
    assert raised.kind is EventKind.RAISED
    assert not raised.alert.acknowledged
    assert raised.alert.occurrences == 1
    assert raised.alert.raised_at == clock.time()
    assert raised.alert.id == "hot"  # ids are stable per rule and label
    assert engine.unacknowledged_count() == 1
    assert kinds(seen) == [
        "raised",
        "acknowledged",
        "resolved",
        "reopened",
        "resolved",
        "raised",
    ]


def test_a_reopen_still_needs_the_full_duration() -> None:
    rule = ThresholdRule("hot", "temp", Comparison.ABOVE, 90, for_seconds=3)
    engine, clock, seen = make(rule)
    feed(engine, clock, "temp", [95] * 4 + [80])
    assert feed(engine, clock, "temp", [95] * 3) == []
    assert kinds(engine.evaluate({"temp": 95})) == ["reopened"]
    assert kinds(seen) == ["raised", "resolved", "reopened"]


# ------------------------------------------------------------------------ wildcards


def test_a_wildcard_metric_makes_one_alert_per_label() -> None:
    rule = ThresholdRule(
        "no_ticks",
        "seconds_since_tick.*",
        Comparison.ABOVE,
        30,
        wildcard_label="symbol",
        labels={"terminal": "demo"},
        message="no tick for {symbol} in {value:.0f} s",
    )
    engine, _, _ = make(rule)
    events = engine.evaluate(
        {
            "seconds_since_tick.EURUSD": 41,
            "seconds_since_tick.GBPUSD": 2,
            "seconds_since_tick.XAUUSD.m": 31,  # broker suffixes contain dots
            "seconds_since_tick.": 99,  # no label: not an instance
            "tps.total": 1000,
        }
    )
    assert sorted(e.alert.id for e in events) == ["no_ticks:EURUSD", "no_ticks:XAUUSD.m"]
    eur = engine.get("no_ticks:EURUSD")
    assert eur is not None
    assert eur.labels == {"terminal": "demo", "symbol": "EURUSD"}
    assert eur.metric == "seconds_since_tick.EURUSD"
    assert eur.message == "no tick for EURUSD in 41 s"
    # Each label has its own lifecycle.
    events = engine.evaluate({"seconds_since_tick.EURUSD": 0.5, "seconds_since_tick.XAUUSD.m": 40})
    assert [(e.kind, e.alert.id) for e in events] == [(EventKind.RESOLVED, "no_ticks:EURUSD")]


def test_a_wildcard_in_the_middle_of_the_name() -> None:
    rule = StateRule("failed", "worker.*.failed", wildcard_label="worker", message="{worker}")
    engine, _, _ = make(rule)
    events = engine.evaluate({"worker.0.failed": False, "worker.1.failed": True, "worker.1": True})
    assert [e.alert.message for e in events] == ["1"]


def test_a_label_that_disappears_keeps_its_alert_as_it_was() -> None:
    engine, _, _ = make(*[r for r in default_rules() if r.name == "worker_failed"])
    engine.evaluate({"worker_failed.w1": True, "worker_failed.w2": False})
    assert engine.evaluate({"worker_failed.w2": False}) == []  # w1 no longer reported
    assert [a.id for a in engine.active()] == ["worker_failed:w1"]


# ------------------------------------------------------------------------- messages


def test_alerts_carry_value_and_threshold_in_the_message() -> None:
    engine, clock, _ = make(TPS)
    feed(engine, clock, "tps.total", [12.4] * 11)
    (alert,) = engine.active()
    assert alert.message == "TPS 12 below 50 for 10 s"
    assert alert.value == 12.4
    assert alert.threshold == 50


def test_display_scale_shows_seconds_as_milliseconds() -> None:
    (rule,) = [r for r in default_rules() if r.name == "latency_p99_high"]
    engine, clock, _ = make(rule)
    events = feed(engine, clock, "latency.tick_to_collector.p99", [0.0734] * 6)
    alert = events[-1].alert
    assert alert.message == "p99 tick-to-collector latency 73.4 ms above 50 ms for 5 s"
    assert alert.value == 0.0734  # the alert itself keeps the metric's unit
    assert alert.threshold == 0.05


def test_state_rules_have_no_threshold() -> None:
    rule = StateRule("link_down", "link.down", for_seconds=3, message="down {for_seconds:g} s")
    engine, clock, _ = make(rule)
    events = feed(engine, clock, "link.down", [True] * 4)
    assert kinds(events) == ["raised"]
    assert events[0].alert.threshold is None
    assert events[0].alert.message == "down 3 s"
    assert events[0].alert.severity is Severity.CRITICAL
    assert kinds(engine.evaluate({"link.down": False})) == ["resolved"]


def test_state_rule_with_a_predicate() -> None:
    rule = StateRule("odd", "state", bad_when=lambda v: int(v) % 2 == 1)
    engine, _, _ = make(rule)
    assert kinds(engine.evaluate({"state": 3})) == ["raised"]
    assert kinds(engine.evaluate({"state": 4})) == ["resolved"]


def test_a_failing_predicate_is_logged_once_and_judges_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def picky(v: float | bool) -> bool:
        if v == 7:
            raise RuntimeError("cannot judge 7")
        return v > 5

    engine, _, _ = make(StateRule("picky", "m", bad_when=picky))
    engine.evaluate({"m": 6})
    with caplog.at_level(logging.ERROR, logger="app.monitor.alerts"):
        assert engine.evaluate({"m": 7}) == []
        assert engine.evaluate({"m": 7}) == []
    assert len([r for r in caplog.records if "cannot judge" in r.getMessage()]) == 1
    assert len(engine.active()) == 1  # neither resolved nor raised again


# --------------------------------------------------------------------- missing data


@pytest.mark.parametrize("gap", [None, math.nan, "absent"])
def test_a_missing_sample_neither_raises_nor_resolves(gap: object) -> None:
    def sample(v: float) -> dict[str, MetricValue]:
        return {"tps.total": v}

    missing: dict[str, MetricValue] = {} if gap == "absent" else {"tps.total": gap}  # type: ignore[dict-item]

    engine, clock, seen = make(TPS)
    # Only gaps: nothing happens however long they last.
    for _ in range(30):
        assert engine.evaluate(missing) == []
        clock.advance(1)
    # The duration neither resets nor completes during a gap: it is frozen, and only a
    # real bad sample past the duration raises.
    engine.evaluate(sample(40))
    for _ in range(20):
        clock.advance(1)
        assert engine.evaluate(missing) == []
    assert kinds(engine.evaluate(sample(40))) == ["raised"]
    # A raised alert stays raised through a gap.
    for _ in range(20):
        clock.advance(1)
        assert engine.evaluate(missing) == []
    assert len(engine.active()) == 1
    assert kinds(engine.evaluate(sample(70))) == ["resolved"]
    assert kinds(seen) == ["raised", "resolved"]


# ---------------------------------------------------------------------- subscribers


def test_a_failing_subscriber_is_logged_and_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, _, first = make(ThresholdRule("hot", "temp", Comparison.ABOVE, 90))

    def broken(event: AlertEvent) -> None:
        raise RuntimeError("notifier down")

    after: list[AlertEvent] = []
    engine.subscribe(broken)
    unsubscribe = engine.subscribe(after.append)
    with caplog.at_level(logging.ERROR, logger="app.monitor.alerts"):
        engine.evaluate({"temp": 95})
    assert kinds(first) == kinds(after) == ["raised"]
    assert any("alert subscriber" in r.getMessage() for r in caplog.records)

    unsubscribe()
    unsubscribe()  # harmless twice
    engine.evaluate({"temp": 80})
    assert kinds(first) == ["raised", "resolved"]
    assert kinds(after) == ["raised"]


def test_a_subscriber_may_act_on_the_engine_and_others_still_see_events_in_order() -> None:
    rules = [
        ThresholdRule("a", "a", Comparison.ABOVE, 1),
        ThresholdRule("b", "b", Comparison.ABOVE, 1),
    ]
    clock = ManualClock()
    engine = AlertEngine(rules, clock)

    def auto_ack(event: AlertEvent) -> None:
        if event.kind is EventKind.RAISED:
            engine.acknowledge(event.alert.id)

    seen: list[tuple[str, str]] = []
    engine.subscribe(auto_ack)
    engine.subscribe(lambda e: seen.append((str(e.kind), e.alert.id)))
    engine.evaluate({"a": 2, "b": 2})
    assert seen == [
        ("raised", "a"),
        ("raised", "b"),
        ("acknowledged", "a"),
        ("acknowledged", "b"),
    ]
    assert engine.unacknowledged_count() == 0


# -------------------------------------------------------------------------- queries


def test_history_is_bounded_and_newest_first() -> None:
    engine, clock, _ = make(ThresholdRule("hot", "temp", Comparison.ABOVE, 90), history_limit=5)
    feed(engine, clock, "temp", [95, 85] * 5)
    history = engine.history()
    assert len(history) == 5
    assert [e.at for e in history] == sorted((e.at for e in history), reverse=True)
    assert history[0].kind is EventKind.RESOLVED
    assert len(engine.history(limit=2)) == 2
    assert engine.history(limit=0) == []


def test_active_lists_the_worst_first() -> None:
    rules = [
        ThresholdRule("info", "m", Comparison.ABOVE, 1, severity=Severity.INFO),
        ThresholdRule("crit", "m", Comparison.ABOVE, 1, severity="critical"),  # type: ignore[arg-type]
        ThresholdRule("warn", "m", Comparison.ABOVE, 1),
    ]
    engine, _, _ = make(*rules)
    engine.evaluate({"m": 2})
    assert [a.id for a in engine.active()] == ["crit", "warn", "info"]


def test_snapshots_cannot_change_the_engine() -> None:
    engine, _, _ = make(ThresholdRule("hot", "temp", Comparison.ABOVE, 90, labels={"k": "v"}))
    (event,) = engine.evaluate({"temp": 95})
    event.alert.labels["k"] = "tampered"  # type: ignore[index]
    (alert,) = engine.active()
    assert alert.labels == {"k": "v"}
    with pytest.raises(AttributeError):
        alert.state = AlertState.RESOLVED  # type: ignore[misc]
    assert isinstance(hash(alert), int)


# --------------------------------------------------------------------- rule checks


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clear_threshold": 40}, "clear_threshold 40 must be >= threshold"),
        ({"message": "{nope}"}, "does not render"),
        ({"message": "{value:d}"}, "does not render"),
        ({"name": "a:b"}, "cannot contain ':'"),
        ({"name": " "}, "needs a name"),
        ({"metric": "a.*.*"}, "one '\\*' at most"),
        ({"for_seconds": -1}, "for_seconds"),
        ({"threshold": math.inf}, "finite"),
        ({"labels": {"value": "x"}}, "shadow"),
        ({"comparison": "sideways"}, "sideways"),
        ({"display_scale": 0}, "display_scale"),
    ],
)
def test_bad_rules_fail_when_built(kwargs: Mapping[str, object], match: str) -> None:
    base: dict[str, object] = {
        "name": "tps",
        "metric": "tps.total",
        "comparison": "below",
        "threshold": 50,
    }
    with pytest.raises(ValueError, match=match):
        ThresholdRule(**{**base, **kwargs})  # type: ignore[arg-type]


def test_state_rules_are_checked_too() -> None:
    with pytest.raises(ValueError, match="does not render"):
        StateRule("s", "m", message="{threshold}")
    with pytest.raises(ValueError, match="already taken"):
        StateRule("s", "m.*", labels={"instance": "x"})
    with pytest.raises(ValueError, match="bool or a predicate"):
        StateRule("s", "m", bad_when="yes")  # type: ignore[arg-type]


def test_the_engine_refuses_duplicate_names_and_bad_settings() -> None:
    rule = ThresholdRule("hot", "temp", Comparison.ABOVE, 90)
    with pytest.raises(ValueError, match="unique: hot"):
        AlertEngine([rule, rule], ManualClock())
    with pytest.raises(ValueError, match="reraise_after"):
        AlertEngine([rule], ManualClock(), reraise_after=-1)
    with pytest.raises(ValueError, match="history_limit"):
        AlertEngine([rule], ManualClock(), history_limit=0)


def test_rules_round_trip_through_plain_json() -> None:
    rules = default_rules()
    data = json.loads(json.dumps([rule_to_dict(r) for r in rules]))
    assert [rule_from_dict(d) for d in data] == rules
    # 'kind' may be left out: a threshold key means a threshold rule.
    rule = rule_from_dict({"name": "x", "metric": "m", "comparison": "above", "threshold": 1})
    assert isinstance(rule, ThresholdRule)
    assert rule.comparison is Comparison.ABOVE
    assert isinstance(rule_from_dict({"name": "s", "metric": "m", "severity": "info"}), StateRule)
    with pytest.raises(ValueError, match="unexpected keyword"):
        rule_from_dict({"name": "x", "metric": "m", "threshold": 1, "colour": "red"})
    with pytest.raises(ValueError, match="kind must be"):
        rule_from_dict({"kind": "magic", "name": "x", "metric": "m"})
    with pytest.raises(ValueError, match="not plain data"):
        rule_to_dict(StateRule("s", "m", bad_when=bool))


def test_default_rules_cover_the_issue_examples() -> None:
    engine, clock, _ = make(*default_rules())
    healthy: dict[str, MetricValue] = {
        "tps.total.all_markets_open": 5000,
        "latency.tick_to_collector.p99": 0.004,
        "worker_failed.0": False,
        "worker_failed.1": False,
        "link.down": False,
        "link.spool_fill": 0.1,
        "system.rss_bytes": 300 * 1024**2,
        "seconds_since_tick.EURUSD": 0.2,
        "seconds_since_tick.BTCUSD": None,  # outside its session: not judged
    }
    sick: dict[str, MetricValue] = {
        "tps.total.all_markets_open": 12,
        "latency.tick_to_collector.p99": 0.080,
        "worker_failed.0": False,
        "worker_failed.1": True,
        "link.down": True,
        "link.spool_fill": 0.8,
        "system.rss_bytes": 1.5 * 1024**3,
        "seconds_since_tick.EURUSD": 45,
        "seconds_since_tick.BTCUSD": None,
    }
    for _ in range(20):
        assert engine.evaluate(healthy) == []
        clock.advance(1)
    raised: dict[str, Alert] = {}
    for _ in range(11):
        raised |= {e.alert.id: e.alert for e in engine.evaluate(sick)}
        clock.advance(1)
    assert set(raised) == {
        "tps_low",
        "latency_p99_high",
        "worker_failed:1",
        "link_down",
        "spool_full",
        "rss_high",
        "no_ticks:EURUSD",
    }
    assert raised["spool_full"].message == "spool 80% full (alert at 80%)"
    assert raised["rss_high"].message == "memory 1.50 GiB above 1 GiB"
    assert raised["no_ticks:EURUSD"].message == "no tick for EURUSD in 45 s (limit 30 s)"
    assert raised["worker_failed:1"].message == "worker 1 failed"
    assert engine.unacknowledged_count() == 7
    resolved = {e.alert.id for e in engine.evaluate(healthy)}
    assert resolved == set(raised)


# ---------------------------------------------------------------------- properties

VALUES = st.sampled_from([None, 30.0, 49.0, 50.0, 55.0, 60.0, 61.0, math.nan])
STEPS = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 7.0])


def _is_missing(v: MetricValue) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


@settings(max_examples=300, deadline=None)
@given(
    samples=st.lists(st.tuples(STEPS, VALUES), max_size=60),
    for_seconds=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    clear=st.sampled_from([None, 55.0, 60.0]),
    reraise_after=st.sampled_from([0.0, 2.0, 60.0]),
)
def test_raises_never_outnumber_the_times_the_condition_newly_held_for_the_duration(
    samples: list[tuple[float, MetricValue]],
    for_seconds: float,
    clear: float | None,
    reraise_after: float,
) -> None:
    rule = ThresholdRule(
        "tps", "tps", Comparison.BELOW, 50, for_seconds=for_seconds, clear_threshold=clear
    )
    engine, clock, seen = make(rule, reraise_after=reraise_after)
    held_for_duration = 0
    since: float | None = None  # start of the current bad run (gaps do not break it)
    counted = False
    for step, value in samples:
        clock.advance(step)
        engine.evaluate({"tps": value})
        if _is_missing(value):
            continue
        assert value is not None
        if value < 50:
            if since is None:
                since, counted = clock.monotonic(), False
            if not counted and clock.monotonic() - since >= for_seconds - 1e-9:
                held_for_duration += 1
                counted = True
        else:
            since = None
    raises = [e for e in seen if e.kind in (EventKind.RAISED, EventKind.REOPENED)]
    assert len(raises) <= held_for_duration
    # Lifecycle invariants: raises and resolves alternate, occurrences count reopens.
    expected = EventKind.RAISED
    occurrences = 0
    for e in seen:
        if e.kind is EventKind.RESOLVED:
            assert expected is EventKind.RESOLVED
            expected = EventKind.RAISED
        else:
            assert expected is EventKind.RAISED
            occurrences = 1 if e.kind is EventKind.RAISED else occurrences + 1
            assert e.alert.occurrences == occurrences
            expected = EventKind.RESOLVED
    assert engine.unacknowledged_count() == (1 if expected is EventKind.RESOLVED else 0)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.sampled_from([30.0, 49.0, 50.0, 70.0]), max_size=60),
    for_seconds=st.sampled_from([0.0, 1.0, 3.0]),
)
def test_without_hysteresis_or_gaps_every_full_duration_raises_exactly_once(
    values: list[float], for_seconds: float
) -> None:
    rule = ThresholdRule("tps", "tps", Comparison.BELOW, 50, for_seconds=for_seconds)
    engine, clock, seen = make(rule)
    runs = 0
    length = 0
    for v in values:
        engine.evaluate({"tps": v})
        clock.advance(1)
        length = length + 1 if v < 50 else 0
        if length == int(for_seconds) + 1:  # held at t0 .. t0 + for_seconds
            runs += 1
    assert len([e for e in seen if e.kind is not EventKind.RESOLVED]) == runs
