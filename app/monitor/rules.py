"""Alert rules: what counts as bad, for how long, and how an alert reads.

Rules are plain frozen dataclasses, buildable from settings (``rule_from_dict``); the
:mod:`app.monitor.alerts` engine evaluates them. A rule's metric may hold one ``*``
wildcard (``seconds_since_tick.*``): one alert per label value.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeAlias

log = logging.getLogger(__name__)

MetricValue: TypeAlias = float | bool | None
"""One sample: a number, a flag, or ``None`` when the metric is unknown right now."""

WILDCARD: Final = "*"
"""In a rule's metric name, stands for one label value (``seconds_since_tick.*``)."""

_EPSILON: Final = 1e-9
"""Slack on duration checks: a timer ticking every 0.1 s must not miss a 1 s duration
because ten float additions came to 0.9999999999."""

_RESERVED_KEYS: Final = frozenset(
    {
        "rule",
        "metric",
        "value",
        "threshold",
        "clear_threshold",
        "for_seconds",
        "comparison",
        "severity",
        "unit",
    }
)
"""Names a message template gets from the engine; labels may not shadow them."""


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Higher is worse; :meth:`AlertEngine.active` lists the worst first."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK: Final = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class Comparison(StrEnum):
    """Which side of the threshold is bad."""

    ABOVE = "above"
    BELOW = "below"


class AlertState(StrEnum):
    RAISED = "raised"
    RESOLVED = "resolved"


class EventKind(StrEnum):
    RAISED = "raised"
    """A new incident (first time, or the previous one resolved before the cool-down)."""
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    REOPENED = "reopened"
    """The condition came back within ``reraise_after`` of resolving: same alert."""


# --------------------------------------------------------------------------- rules


def _check_common(
    name: str,
    metric: str,
    for_seconds: float,
    labels: Mapping[str, str],
    wildcard_label: str,
) -> None:
    """Validation shared by both rule kinds, so a bad settings file fails at load time
    with the rule's name rather than at 3 a.m. inside the timer."""
    if not name.strip():
        raise ValueError("an alert rule needs a name")
    if ":" in name:
        # ':' separates the rule from the wildcard label in an alert id.
        raise ValueError(f"rule {name!r}: a rule name cannot contain ':'")
    if not metric.strip():
        raise ValueError(f"rule {name}: the metric name is empty")
    if metric.count(WILDCARD) > 1:
        raise ValueError(f"rule {name}: a metric name may hold one '*' at most ({metric})")
    if not math.isfinite(for_seconds) or for_seconds < 0:
        raise ValueError(f"rule {name}: for_seconds must be a finite number >= 0")
    for key in labels:
        if key in _RESERVED_KEYS:
            raise ValueError(f"rule {name}: label {key!r} would shadow a message field")
    if WILDCARD in metric:
        if not wildcard_label.isidentifier():
            raise ValueError(f"rule {name}: wildcard_label must be an identifier")
        if wildcard_label in _RESERVED_KEYS or wildcard_label in labels:
            raise ValueError(f"rule {name}: wildcard_label {wildcard_label!r} is already taken")


def _sample_labels(labels: Mapping[str, str], metric: str, wildcard_label: str) -> dict[str, str]:
    out = dict(labels)
    if WILDCARD in metric:
        out[wildcard_label] = "X"
    return out


def _check_template(name: str, message: str, fields: Mapping[str, object]) -> None:
    try:
        message.format(**fields)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"rule {name}: message {message!r} does not render ({type(exc).__name__}: {exc})"
        ) from None


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """A number that must stay on one side of a threshold.

    Bad means ``value > threshold`` (``>=`` with ``inclusive``) for ``above``, and the
    mirror for ``below``. Once raised, the alert resolves only when the value is no
    longer bad *against* ``clear_threshold`` (default: ``threshold``, i.e. no
    hysteresis); values between the two thresholds keep it raised.

    ``message`` is a :meth:`str.format` template over ``value``, ``threshold``,
    ``clear_threshold`` (all three multiplied by ``display_scale``, so a latency kept
    in seconds can read in ms), ``unit``, ``for_seconds``, ``metric`` (the concrete
    name), ``comparison``, ``severity``, ``rule`` and every label. It is checked when
    the rule is built, so a typo fails the settings file rather than the alert.

    Every field is plain data and string enums accept their values, so
    ``ThresholdRule(**json_object)`` (or :func:`rule_from_dict`) builds a rule.
    """

    name: str
    metric: str
    comparison: Comparison
    threshold: float
    for_seconds: float = 0.0
    clear_threshold: float | None = None
    severity: Severity = Severity.WARNING
    message: str = "{metric} is {value:g} ({comparison} {threshold:g}) for {for_seconds:g} s"
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    wildcard_label: str = "instance"
    """Label that receives what ``*`` matched in the metric name (e.g. ``symbol``)."""
    inclusive: bool = False
    display_scale: float = 1.0
    unit: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "comparison", Comparison(self.comparison))
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "for_seconds", float(self.for_seconds))
        object.__setattr__(self, "display_scale", float(self.display_scale))
        object.__setattr__(self, "labels", dict(self.labels))
        if self.clear_threshold is not None:
            object.__setattr__(self, "clear_threshold", float(self.clear_threshold))
        _check_common(self.name, self.metric, self.for_seconds, self.labels, self.wildcard_label)
        if not math.isfinite(self.threshold):
            raise ValueError(f"rule {self.name}: the threshold must be finite")
        clear = self.effective_clear
        if not math.isfinite(clear):
            raise ValueError(f"rule {self.name}: clear_threshold must be finite")
        if (self.comparison is Comparison.ABOVE and clear > self.threshold) or (
            self.comparison is Comparison.BELOW and clear < self.threshold
        ):
            side = "<=" if self.comparison is Comparison.ABOVE else ">="
            raise ValueError(
                f"rule {self.name}: clear_threshold {clear:g} must be {side} threshold "
                f"{self.threshold:g} for a '{self.comparison}' rule (it is where the alert "
                "resolves, back on the healthy side)"
            )
        if not math.isfinite(self.display_scale) or self.display_scale == 0:
            raise ValueError(f"rule {self.name}: display_scale must be finite and non-zero")
        _check_template(
            self.name,
            self.message,
            self._fields(
                self.threshold,
                self.metric,
                _sample_labels(self.labels, self.metric, self.wildcard_label),
            ),
        )

    @property
    def effective_clear(self) -> float:
        return self.threshold if self.clear_threshold is None else self.clear_threshold

    def _beyond(self, value: float, limit: float) -> bool:
        if self.comparison is Comparison.ABOVE:
            return value >= limit if self.inclusive else value > limit
        return value <= limit if self.inclusive else value < limit

    def is_bad(self, value: float | bool) -> bool:
        """The condition that, held for ``for_seconds``, raises the alert."""
        return self._beyond(float(value), self.threshold)

    def is_clear(self, value: float | bool) -> bool:
        """Whether a raised alert resolves on this value (the hysteresis side)."""
        return not self._beyond(float(value), self.effective_clear)

    @property
    def reported_threshold(self) -> float | None:
        return self.threshold

    def _fields(
        self, value: float | bool, metric: str, labels: Mapping[str, str]
    ) -> dict[str, object]:
        s = self.display_scale
        return {
            **labels,
            "rule": self.name,
            "metric": metric,
            "value": float(value) * s,
            "threshold": self.threshold * s,
            "clear_threshold": self.effective_clear * s,
            "for_seconds": self.for_seconds,
            "comparison": str(self.comparison),
            "severity": str(self.severity),
            "unit": self.unit,
        }

    def render(self, value: float | bool, metric: str, labels: Mapping[str, str]) -> str:
        return self.message.format(**self._fields(value, metric, labels))


@dataclass(frozen=True, slots=True)
class StateRule:
    """A flag or state that is bad in itself: "worker failed", "link down".

    ``bad_when`` is the bad value (``True``: the metric is truthy) or, for anything
    richer, a predicate over the sample. There is no hysteresis: the alert resolves on
    the first sample that is not bad. ``message`` may use ``value``, ``metric``,
    ``for_seconds``, ``severity``, ``rule`` and every label (no ``threshold``: a state
    has none). Only a ``bool`` ``bad_when`` is plain data; a predicate is for code.
    """

    name: str
    metric: str
    bad_when: bool | Callable[[float | bool], bool] = True
    for_seconds: float = 0.0
    severity: Severity = Severity.CRITICAL
    message: str = "{metric} is {value} for {for_seconds:g} s"
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    wildcard_label: str = "instance"

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "for_seconds", float(self.for_seconds))
        object.__setattr__(self, "labels", dict(self.labels))
        _check_common(self.name, self.metric, self.for_seconds, self.labels, self.wildcard_label)
        if not isinstance(self.bad_when, bool) and not callable(self.bad_when):
            raise ValueError(f"rule {self.name}: bad_when must be a bool or a predicate")
        sample = self.bad_when if isinstance(self.bad_when, bool) else True
        _check_template(
            self.name,
            self.message,
            self._fields(
                sample, self.metric, _sample_labels(self.labels, self.metric, self.wildcard_label)
            ),
        )

    def is_bad(self, value: float | bool) -> bool:
        if isinstance(self.bad_when, bool):
            return bool(value) is self.bad_when
        return bool(self.bad_when(value))

    def is_clear(self, value: float | bool) -> bool:
        return not self.is_bad(value)

    @property
    def reported_threshold(self) -> float | None:
        return None

    def _fields(
        self, value: float | bool, metric: str, labels: Mapping[str, str]
    ) -> dict[str, object]:
        return {
            **labels,
            "rule": self.name,
            "metric": metric,
            "value": value,
            "for_seconds": self.for_seconds,
            "severity": str(self.severity),
        }

    def render(self, value: float | bool, metric: str, labels: Mapping[str, str]) -> str:
        return self.message.format(**self._fields(value, metric, labels))


Rule: TypeAlias = ThresholdRule | StateRule


def rule_from_dict(data: Mapping[str, Any]) -> Rule:
    """Build a rule from plain data (a settings file, the config's alerts section).

    ``kind`` is ``"threshold"`` or ``"state"``; without it, the presence of a
    ``threshold`` key decides. Every problem comes out as :class:`ValueError`, which
    pydantic turns into a normal validation error.
    """
    d = dict(data)
    kind = d.pop("kind", None) or ("threshold" if "threshold" in d else "state")
    name = d.get("name", "?")
    try:
        if kind == "threshold":
            return ThresholdRule(**d)
        if kind == "state":
            return StateRule(**d)
    except TypeError as exc:  # missing or unknown fields
        raise ValueError(f"rule {name}: {exc}") from None
    raise ValueError(f"rule {name}: kind must be 'threshold' or 'state', not {kind!r}")


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The plain-data form :func:`rule_from_dict` reads back (JSON-serialisable)."""
    if isinstance(rule, ThresholdRule):
        return {
            "kind": "threshold",
            "name": rule.name,
            "metric": rule.metric,
            "comparison": str(rule.comparison),
            "threshold": rule.threshold,
            "for_seconds": rule.for_seconds,
            "clear_threshold": rule.clear_threshold,
            "severity": str(rule.severity),
            "message": rule.message,
            "labels": dict(rule.labels),
            "wildcard_label": rule.wildcard_label,
            "inclusive": rule.inclusive,
            "display_scale": rule.display_scale,
            "unit": rule.unit,
        }
    if not isinstance(rule.bad_when, bool):
        raise ValueError(f"rule {rule.name}: a predicate bad_when is not plain data")
    return {
        "kind": "state",
        "name": rule.name,
        "metric": rule.metric,
        "bad_when": rule.bad_when,
        "for_seconds": rule.for_seconds,
        "severity": str(rule.severity),
        "message": rule.message,
        "labels": dict(rule.labels),
        "wildcard_label": rule.wildcard_label,
    }


def default_rules() -> list[Rule]:
    """The rules of the monitoring issue; the settings may replace or extend them.

    Thresholds come with some hysteresis where the metric is noisy (throughput,
    latency, spool, memory); flags resolve as soon as they clear.
    """
    gib = 1024**3
    return [
        ThresholdRule(
            "tps_low",
            # Not evaluated while a captured market is closed (monitor.py).
            "tps.total.all_markets_open",
            Comparison.BELOW,
            50,
            for_seconds=10,
            clear_threshold=55,
            severity=Severity.WARNING,
            message="TPS {value:.0f} below {threshold:.0f} for {for_seconds:g} s",
        ),
        ThresholdRule(
            "latency_p99_high",
            "latency.tick_to_collector.p99",
            Comparison.ABOVE,
            0.050,
            for_seconds=5,
            clear_threshold=0.040,
            severity=Severity.WARNING,
            display_scale=1000,
            unit="ms",
            message="p99 tick-to-collector latency {value:.1f} {unit} above "
            "{threshold:.0f} {unit} for {for_seconds:g} s",
        ),
        StateRule(
            "worker_failed",
            "worker_failed.*",
            bad_when=True,
            severity=Severity.CRITICAL,
            wildcard_label="worker",
            message="worker {worker} failed",
        ),
        StateRule(
            "terminal_offline",
            "terminal_offline.*",
            bad_when=True,
            severity=Severity.CRITICAL,
            wildcard_label="worker",
            message="terminal offline (worker {worker}): the terminal lost its trade server; "
            "no new ticks until it is back, then capture resumes without a hole",
        ),
        StateRule(
            "link_down",
            "link.down",
            bad_when=True,
            for_seconds=3,
            severity=Severity.CRITICAL,
            message="link to the data bridge down for {for_seconds:g} s",
        ),
        ThresholdRule(
            "spool_full",
            "link.spool_fill",
            Comparison.ABOVE,
            0.8,
            inclusive=True,
            clear_threshold=0.7,
            severity=Severity.WARNING,
            message="spool {value:.0%} full (alert at {threshold:.0%})",
        ),
        ThresholdRule(
            "spool_disk_low",
            "spool_disk_free_mb.*",
            Comparison.BELOW,
            64,
            clear_threshold=128,
            severity=Severity.WARNING,
            wildcard_label="folder",
            message="spool folder {folder}: {value:.0f} MB free (alert below {threshold:.0f} "
            "MB); when it is full, intake pauses and ticks wait in the terminal",
        ),
        StateRule(
            "spool_write_failed",
            "link.spool_write_failed",
            bad_when=True,
            severity=Severity.CRITICAL,
            message="the spool cannot be written: intake paused, ticks wait in the terminal "
            "(the Journal names the folder and the error)",
        ),
        ThresholdRule(
            "rss_high",
            "system.rss_bytes",
            Comparison.ABOVE,
            gib,
            for_seconds=10,
            clear_threshold=0.9 * gib,
            severity=Severity.WARNING,
            display_scale=1 / gib,
            unit="GiB",
            message="memory {value:.2f} {unit} above {threshold:.0f} {unit}",
        ),
        ThresholdRule(
            "no_ticks",
            "seconds_since_tick.*",
            Comparison.ABOVE,
            30,
            severity=Severity.WARNING,
            wildcard_label="symbol",
            message="no tick for {symbol} in {value:.0f} s (limit {threshold:g} s)",
        ),
    ]
