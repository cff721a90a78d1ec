"""The alert engine: rules over the client's own health metrics, with a lifecycle.

The monitor samples its metrics (ticks per second, latency percentiles, worker and link
state, memory...) into one flat ``{name: value}`` mapping about once a second; this
module turns that stream of numbers into the handful of alerts a person can act on.

It is deliberately pure: no I/O, no asyncio, no threads, and "now" comes from a
:class:`~app.clock.Clock`, so every timing rule is tested with a
:class:`~app.clock.ManualClock` instead of by sleeping. Three properties keep it from
becoming a noise generator:

* **duration** – a condition must hold on every sample for ``for_seconds`` before it is
  raised, so one slow second is not an incident;
* **hysteresis** – a raised alert resolves only once the value is back past a separate
  ``clear_threshold``, so a value hovering around the threshold does not flap;
* **de-duplication** – an alert raised again within ``reraise_after`` seconds of
  resolving is the *same* incident: it is reopened and its ``occurrences`` grows,
  instead of a new alert per flap.

A missing sample (``None``, NaN, or a key absent from the mapping) is no evidence
either way: it neither raises, resolves, starts nor resets anything – the state is
frozen until a real value arrives. A metric source that is down is its own alert
(e.g. ``link.down``), not a reason to resolve every alert that depends on it.

Timing uses ``clock.monotonic()`` (a wall-clock jump must not raise or resolve
anything); the timestamps on an :class:`Alert` use ``clock.time()`` for display.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeAlias

from app.clock import Clock
from app.monitor.rules import (
    _EPSILON,
    WILDCARD,
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

__all__ = [
    "Alert",
    "AlertCallback",
    "AlertEngine",
    "AlertEvent",
    "AlertState",
    "Comparison",
    "EventKind",
    "MetricValue",
    "Rule",
    "Severity",
    "StateRule",
    "ThresholdRule",
    "default_rules",
    "rule_from_dict",
    "rule_to_dict",
]

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------- alerts


@dataclass(frozen=True, slots=True)
class Alert:
    """A snapshot of one alert; the engine hands out a new one on every change.

    ``id`` is ``rule`` or ``rule:label`` (wildcard rules), stable across raises, so a
    UI can key rows on it. ``value`` is the latest measured value (it keeps updating
    while the alert is raised), ``threshold`` is ``None`` for state rules.
    ``raised_at`` is when this incident was first raised (a reopen keeps it), and
    ``occurrences`` counts raises folded into it. Times are wall-clock seconds.
    """

    id: str
    rule: str
    metric: str
    severity: Severity
    state: AlertState
    acknowledged: bool
    message: str
    value: float | bool
    threshold: float | None
    labels: Mapping[str, str] = field(hash=False)
    raised_at: float
    resolved_at: float | None
    last_value_at: float
    occurrences: int

    @property
    def active(self) -> bool:
        return self.state is AlertState.RAISED


@dataclass(frozen=True, slots=True)
class AlertEvent:
    kind: EventKind
    alert: Alert
    at: float
    """Wall-clock time of the event."""


AlertCallback: TypeAlias = Callable[[AlertEvent], object]


@dataclass(slots=True)
class _Instance:
    """The live state of one rule for one label: what a snapshot cannot hold."""

    rule: Rule
    alert_id: str
    metric: str
    labels: dict[str, str]
    pending_since: float | None = None  # monotonic; the condition has held since
    alert: Alert | None = None
    resolved_mono: float | None = None
    predicate_failing: bool = False


def _missing(value: MetricValue) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class AlertEngine:
    """Evaluates rules against metric snapshots and keeps the resulting alerts.

    Call :meth:`evaluate` on a timer (about once a second) with the latest value of
    every metric; subscribers hear about raises, resolves, reopens and
    acknowledgements as they happen. Alerts are never deleted, only resolved, so the
    table is bounded by rules x labels; the event history is a bounded ring.

    Not thread-safe: call it from one thread (the event loop, which with qasync is
    also the UI's). Subscribers may call back into the engine (e.g. acknowledge);
    their events are queued so every subscriber still sees events in order.

    Acknowledgement survives a reopen: someone who acknowledged a flapping condition
    already knows about it, and paging them again on every flap is the flood
    de-duplication exists to prevent. A raise after the cool-down is a new incident
    and starts unacknowledged.
    """

    def __init__(
        self,
        rules: Iterable[Rule],
        clock: Clock,
        *,
        reraise_after: float = 300.0,
        history_limit: int = 1000,
    ) -> None:
        self._rules = tuple(rules)
        names = [r.name for r in self._rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"alert rule names must be unique: {', '.join(duplicates)}")
        if not math.isfinite(reraise_after) or reraise_after < 0:
            raise ValueError("reraise_after must be a finite number >= 0")
        if history_limit < 1:
            raise ValueError("history_limit must be >= 1")
        self._clock = clock
        self._reraise_after = float(reraise_after)
        self._history: deque[AlertEvent] = deque(maxlen=history_limit)
        self._instances: dict[str, _Instance] = {}
        self._subscribers: list[AlertCallback] = []
        self._queue: deque[AlertEvent] = deque()
        self._dispatching = False

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    # -- evaluation ----------------------------------------------------------------

    def evaluate(self, metrics: Mapping[str, MetricValue]) -> list[AlertEvent]:
        """Feed one snapshot of metrics; returns (and publishes) the events it caused.

        A metric that is absent, ``None`` or NaN leaves its alert exactly as it was.
        """
        now_mono = self._clock.monotonic()
        now_wall = self._clock.time()
        events: list[AlertEvent] = []
        for rule in self._rules:
            for inst, value in self._samples(rule, metrics):
                event = self._step(inst, value, now_mono, now_wall)
                if event is not None:
                    events.append(event)
        self._publish(events)
        return events

    def _samples(
        self, rule: Rule, metrics: Mapping[str, MetricValue]
    ) -> list[tuple[_Instance, MetricValue]]:
        if WILDCARD not in rule.metric:
            inst = self._instance(rule, rule.name, rule.metric, dict(rule.labels))
            return [(inst, metrics.get(rule.metric))]
        prefix, suffix = rule.metric.split(WILDCARD)
        out: list[tuple[_Instance, MetricValue]] = []
        for key in sorted(metrics):
            if len(key) <= len(prefix) + len(suffix):
                continue
            if not (key.startswith(prefix) and key.endswith(suffix)):
                continue
            label = key[len(prefix) : len(key) - len(suffix)]
            labels = {**rule.labels, rule.wildcard_label: label}
            out.append((self._instance(rule, f"{rule.name}:{label}", key, labels), metrics[key]))
        # Labels seen before but absent now are missing samples: nothing to do for them.
        return out

    def _instance(
        self, rule: Rule, alert_id: str, metric: str, labels: dict[str, str]
    ) -> _Instance:
        inst = self._instances.get(alert_id)
        if inst is None:
            inst = self._instances[alert_id] = _Instance(rule, alert_id, metric, labels)
        return inst

    def _classify(self, inst: _Instance, value: float | bool) -> tuple[bool, bool] | None:
        """``(bad, clear)`` for a sample, or ``None`` when a predicate cannot judge it."""
        try:
            result = inst.rule.is_bad(value), inst.rule.is_clear(value)
        except Exception:
            if not inst.predicate_failing:  # once per bout, not once a second
                log.exception(
                    "alert rule %s cannot judge %s=%r", inst.rule.name, inst.metric, value
                )
            inst.predicate_failing = True
            return None
        inst.predicate_failing = False
        return result

    def _render(self, inst: _Instance, value: float | bool) -> str:
        try:
            return inst.rule.render(value, inst.metric, inst.labels)
        except Exception:  # checked at build time, so only an exotic value lands here
            log.exception("alert rule %s: message does not render", inst.rule.name)
            return f"{inst.rule.name}: {inst.metric} = {value!r}"

    def _step(
        self, inst: _Instance, sample: MetricValue, now_mono: float, now_wall: float
    ) -> AlertEvent | None:
        if sample is None or _missing(sample):
            return None
        value: float | bool = sample
        verdict = self._classify(inst, value)
        if verdict is None:
            return None
        bad, clear = verdict
        rule = inst.rule
        current = inst.alert

        if current is not None and current.state is AlertState.RAISED:
            if clear:
                inst.resolved_mono = now_mono
                inst.alert = replace(
                    current,
                    state=AlertState.RESOLVED,
                    resolved_at=now_wall,
                    value=value,
                    last_value_at=now_wall,
                    message=self._render(inst, value),
                )
                return self._record(EventKind.RESOLVED, inst.alert, now_wall)
            # Still raised (bad, or inside the hysteresis band): track the value quietly.
            inst.alert = replace(
                current, value=value, last_value_at=now_wall, message=self._render(inst, value)
            )
            return None

        if not bad:
            inst.pending_since = None  # a dip restarts the duration
            return None
        if inst.pending_since is None:
            inst.pending_since = now_mono
        if now_mono - inst.pending_since + _EPSILON < rule.for_seconds:
            return None

        inst.pending_since = None
        message = self._render(inst, value)
        if (
            current is not None
            and inst.resolved_mono is not None
            and now_mono - inst.resolved_mono <= self._reraise_after
        ):
            inst.alert = replace(
                current,
                state=AlertState.RAISED,
                severity=rule.severity,
                resolved_at=None,
                value=value,
                last_value_at=now_wall,
                message=message,
                occurrences=current.occurrences + 1,
            )
            return self._record(EventKind.REOPENED, inst.alert, now_wall)
        inst.alert = Alert(
            id=inst.alert_id,
            rule=rule.name,
            metric=inst.metric,
            severity=rule.severity,
            state=AlertState.RAISED,
            acknowledged=False,
            message=message,
            value=value,
            threshold=rule.reported_threshold,
            labels=dict(inst.labels),
            raised_at=now_wall,
            resolved_at=None,
            last_value_at=now_wall,
            occurrences=1,
        )
        return self._record(EventKind.RAISED, inst.alert, now_wall)

    def _record(self, kind: EventKind, alert: Alert, at: float) -> AlertEvent:
        event = AlertEvent(kind, _detached(alert), at)
        self._history.append(event)
        return event

    # -- operator actions ------------------------------------------------------------

    def acknowledge(self, alert_id: str) -> Alert:
        """Mark an alert as seen; idempotent. Raises :class:`KeyError` for an unknown id.

        A resolved alert can be acknowledged too (someone read it in the history).
        """
        inst = self._instances.get(alert_id)
        if inst is None or inst.alert is None:
            raise KeyError(alert_id)
        if inst.alert.acknowledged:
            return _detached(inst.alert)
        inst.alert = replace(inst.alert, acknowledged=True)
        event = self._record(EventKind.ACKNOWLEDGED, inst.alert, self._clock.time())
        self._publish([event])
        return event.alert

    # -- queries ---------------------------------------------------------------------

    def get(self, alert_id: str) -> Alert | None:
        inst = self._instances.get(alert_id)
        return None if inst is None or inst.alert is None else _detached(inst.alert)

    def active(self) -> list[Alert]:
        """Raised alerts, worst severity first, then oldest first."""
        alerts = [
            _detached(i.alert)
            for i in self._instances.values()
            if i.alert is not None and i.alert.active
        ]
        alerts.sort(key=lambda a: (-a.severity.rank, a.raised_at, a.id))
        return alerts

    def unacknowledged_count(self) -> int:
        """Raised alerts nobody has acknowledged: the number on the status-bar badge."""
        return sum(
            1
            for i in self._instances.values()
            if i.alert is not None and i.alert.active and not i.alert.acknowledged
        )

    def history(self, limit: int | None = None) -> list[AlertEvent]:
        """The most recent events, newest first; at most ``history_limit`` are kept."""
        events = list(reversed(self._history))
        return events if limit is None else events[: max(0, limit)]

    # -- subscribers -----------------------------------------------------------------

    def subscribe(self, callback: AlertCallback) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns an unsubscribe.

        A subscriber that raises is logged and skipped: a broken notifier must not
        keep the status bar (or the next notifier) from hearing about an outage.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _publish(self, events: Iterable[AlertEvent]) -> None:
        self._queue.extend(events)
        if self._dispatching:  # re-entrant call from a subscriber: the outer loop delivers
            return
        self._dispatching = True
        try:
            while self._queue:
                event = self._queue.popleft()
                for callback in tuple(self._subscribers):
                    try:
                        callback(event)
                    except Exception:
                        log.exception(
                            "alert subscriber %r failed on %s %s",
                            callback,
                            event.kind,
                            event.alert.id,
                        )
        finally:
            self._dispatching = False


def _detached(alert: Alert) -> Alert:
    """A copy with its own labels dict, so no caller can edit the engine's alerts."""
    return replace(alert, labels=dict(alert.labels))
