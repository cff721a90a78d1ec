"""The risk engine: the one guard in front of every ``order_send``, manual or automatic.

Modelled on NautilusTrader's ``RiskEngine`` (its facts, not its code): a trading state,
pre-trade checks that refuse an order with a reason, and an order-rate throttle.

**States.** ``ACTIVE``: every check applies, nothing more. ``REDUCING``: only what
lowers exposure passes: closing (part of) a position, on a netting account a market order
against the net position that does not flip it, cancelling a pending order, and
modifying SL/TP or a pending order's price (no volume changes). ``HALTED``: as in
Nautilus, every new order is refused and so are modifications; cancelling a pending
order stays allowed, and, unlike Nautilus, so does closing a position, so a trader
whose kill switch is pulled can still get flat. Signals get nothing while HALTED (not
even closes): the kill switch stops all automatic trading at once.

The state is the stricter of two: the one set by hand (:meth:`RiskEngine.halt`,
:meth:`RiskEngine.reduce_only`, :meth:`RiskEngine.resume`) and the daily loss limit's.
When equity has dropped by ``max_daily_loss`` or more since the day's start, trading is
HALTED until the next **server** day (the broker's midnight, where its D1 bar opens);
:meth:`RiskEngine.resume` cannot lift that (raising the limit in the settings can). The
day's starting equity is the equity of the first :class:`AccountView` seen in that
server day: a client started late in the day counts from its start.

**Checks**, in order, the first that fails names the refusal: trading enabled; real
account (setting *and* this session's consent); a well-formed intent against the view
(a close names an open position and no more than its volume); the state; allowed
symbols (new orders only: a position in a symbol taken off the list can still be
closed); volume per order and the symbol's min/max/step; exposure per symbol (net lots
after the order with every pending order counted in its own direction, so that no
fill can pass the limit); open positions (pending orders count as the positions they
may become); orders per second (a token bucket on the clock, every origin counts;
cancels pass unthrottled, as in Nautilus). The rate check comes last because it spends a
token: :meth:`RiskEngine.check` is a commitment to send when it accepts.

Not thread-safe by design: the engine lives on the core's event loop, like the
session that calls it. Decisions and state changes go to a :class:`RiskJournal`
(:mod:`app.trading.risk_audit` writes them to the audit log off the order path).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from app.clock import Clock
from app.config.trading_schema import TradingConfig
from app.ratelimit import TokenBucket
from app.trading.account_view import AccountView
from app.trading.intent import Action, OrderIntent, Origin
from app.trading.risk_rules import EPS, Rule, malformed, reduces, volume_refusal
from app.trading.view import RiskState, RiskStatus

__all__ = [
    "RiskDecision",
    "RiskEngine",
    "RiskJournal",
    "Rule",
    "StateCause",
    "StateChange",
    "TradingState",
]

_log = logging.getLogger(__name__)


#: The trading state is the window's ``RiskState`` (one type, defined with the snapshot
#: the window renders): ACTIVE, REDUCING, HALTED.
TradingState = RiskState


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class StateCause(enum.StrEnum):
    MANUAL = "manual"  # halt / reduce_only / resume
    DAILY_LOSS = "daily_loss"
    NEW_DAY = "new_day"  # server midnight lifted the daily loss halt
    LIMITS = "limits"  # a settings change moved the daily loss limit


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The engine's answer: ``reason`` is one line a trader reads."""

    accepted: bool
    reason: str
    rule: Rule
    state: TradingState


@dataclass(frozen=True, slots=True)
class StateChange:
    """The trading state moved (or was set by hand): what the status bar and audit show."""

    state: TradingState
    previous: TradingState
    manual_state: TradingState
    cause: StateCause
    reason: str
    time_utc_s: float


class RiskJournal(Protocol):
    """Where decisions and state changes are recorded; called on the order path, so an
    implementation must only hand the record on (see :mod:`app.trading.risk_audit`)."""

    def decision(
        self, intent: OrderIntent, decision: RiskDecision, view: AccountView, time_utc_s: float
    ) -> None: ...

    def state_changed(self, change: StateChange) -> None: ...

    def consent(self, granted: bool, time_utc_s: float) -> None: ...


@dataclass(slots=True)
class _Day:
    start_utc_s: int
    start_equity: float
    drop: float = 0.0
    halted: str | None = None  # the daily loss halt's reason, once hit


class RiskEngine:
    """Judges every :class:`OrderIntent` against the settings' limits and an
    :class:`AccountView`. Call :meth:`check` once per order, right before sending it."""

    def __init__(
        self, config: TradingConfig, clock: Clock, journal: RiskJournal | None = None
    ) -> None:
        self._clock = clock
        self._journal = journal
        self._config = config
        self._allowed = frozenset(config.risk.allowed_symbols)
        self._bucket = TokenBucket(config.risk.max_orders_per_second, clock)
        self._manual = TradingState.ACTIVE
        self._manual_reason = ""
        self._state = TradingState.ACTIVE
        self._day: _Day | None = None
        self._consent = False
        self._listeners: list[Callable[[StateChange], None]] = []
        self._changed_at: float | None = None

    # ------------------------------------------------------------------ reading
    @property
    def config(self) -> TradingConfig:
        return self._config

    @property
    def state(self) -> TradingState:
        return self._state

    @property
    def manual_state(self) -> TradingState:
        return self._manual

    @property
    def state_reason(self) -> str:
        """Why the state is what it is (empty when ACTIVE)."""
        if self._day is not None and self._day.halted is not None:
            return self._day.halted
        return self._manual_reason

    def status(self) -> RiskStatus:
        """The state as the window's snapshot shows it (HALT control, status bar)."""
        since_ms = int(self._changed_at * 1000) if self._changed_at is not None else 0
        return RiskStatus(self._state, self.state_reason, since_ms)

    @property
    def day_start_equity(self) -> float | None:
        return self._day.start_equity if self._day is not None else None

    @property
    def real_account_consent(self) -> bool:
        return self._consent

    def subscribe(self, listener: Callable[[StateChange], None]) -> Callable[[], None]:
        """Call ``listener`` on every state change; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # ------------------------------------------------------------------ the kill switch
    def halt(self, reason: str) -> StateChange:
        """HALTED by hand: nothing new is sent, no signal executes; closing and
        cancelling stay allowed. Stays until :meth:`resume` (a new day does not lift it)."""
        return self._set_manual(TradingState.HALTED, reason or "halted by hand")

    def reduce_only(self, reason: str) -> StateChange:
        return self._set_manual(TradingState.REDUCING, reason or "reduce only, set by hand")

    def resume(self, reason: str = "resumed by hand") -> StateChange:
        """Back to ACTIVE as far as the hand-set state goes; a daily loss halt stays."""
        return self._set_manual(TradingState.ACTIVE, reason)

    def grant_real_account_consent(self) -> None:
        """The trader confirmed trading on a real account, for this session (the window
        asks once; nothing stores the answer)."""
        self._consent = True
        if self._journal is not None:
            self._journal.consent(True, self._clock.time())

    def revoke_real_account_consent(self) -> None:
        self._consent = False
        if self._journal is not None:
            self._journal.consent(False, self._clock.time())

    def update_limits(self, config: TradingConfig) -> None:
        """The settings changed: new limits from now on. A raised daily loss limit above
        today's drop lifts its halt; a lowered one at or below it halts at once."""
        self._config = config
        self._allowed = frozenset(config.risk.allowed_symbols)
        self._bucket.reconfigure(config.risk.max_orders_per_second)
        day = self._day
        if day is None:
            return
        limit = config.risk.max_daily_loss
        if day.halted is not None and day.drop + EPS < limit:
            day.halted = None
            self._update_state(
                StateCause.LIMITS,
                f"daily loss limit now {limit:,.2f}: today's drop {day.drop:,.2f} is below it",
            )
        else:
            self._judge_loss(limit, StateCause.LIMITS)

    # ------------------------------------------------------------------ the account
    def observe(self, view: AccountView) -> TradingState:
        """Keep the daily loss bookkeeping current (called by :meth:`check`; call it on
        every account snapshot too, so a loss halts trading before the next order)."""
        day = self._day
        if day is None or view.day_start_utc_s > day.start_utc_s:
            lifted = day is not None and day.halted is not None
            self._day = day = _Day(view.day_start_utc_s, view.equity)
            if lifted:
                self._update_state(
                    StateCause.NEW_DAY,
                    f"new server day: the daily loss counts from equity "
                    f"{view.equity:,.2f} {view.currency}",
                )
        day.drop = day.start_equity - view.equity
        if day.halted is None:
            self._judge_loss(self._config.risk.max_daily_loss, StateCause.DAILY_LOSS, view)
        return self._state

    def _judge_loss(self, limit: float, cause: StateCause, view: AccountView | None = None) -> None:
        day = self._day
        if day is None or day.halted is not None or day.drop + EPS < limit:
            return
        currency = f" {view.currency}" if view is not None else ""
        day.halted = (
            f"daily loss {day.drop:,.2f}{currency} reached the limit of {limit:,.2f}; "
            "trading resumes at the next server day"
        )
        self._update_state(cause, day.halted)

    # ------------------------------------------------------------------ the check
    def check(self, intent: OrderIntent, view: AccountView) -> RiskDecision:
        """Accept or refuse ``intent`` on the account ``view``; journal the decision.

        An accepted order has used a slot of the order rate: send it (or report it lost).
        """
        self.observe(view)
        decision = self._judge(intent, view)
        if self._journal is not None:
            self._journal.decision(intent, decision, view, self._clock.time())
        return decision

    def _judge(self, intent: OrderIntent, view: AccountView) -> RiskDecision:
        config = self._config
        if not config.enabled:
            return self._refuse(Rule.DISABLED, "trading is off in the settings (trading.enabled)")
        if view.is_real:
            account = f"account {view.login} on {view.server} trades real money"
            if not config.allow_real_account:
                return self._refuse(
                    Rule.REAL_ACCOUNT,
                    f"real account: {account}; the settings do not allow it "
                    "(trading.allow_real_account)",
                )
            if not self._consent:
                return self._refuse(
                    Rule.REAL_ACCOUNT_CONSENT,
                    f"real account: {account}; confirm it once for this session first",
                )
        problem = malformed(intent, view)
        if problem is not None:
            return self._refuse(Rule.INVALID, problem)
        refusal = self._state_refusal(intent, view)
        if refusal is not None:
            return refusal
        action = intent.action
        if action is Action.OPEN or action is Action.CLOSE:
            refused = volume_refusal(intent, view, config.risk, self._allowed)
            if refused is not None:
                return self._refuse(*refused)
        if action is not Action.CANCEL and not self._bucket.try_take():
            wait_ms = math.ceil(self._bucket.wait_s() * 1000)
            return self._refuse(
                Rule.RATE,
                f"more than {config.risk.max_orders_per_second:g} orders per second: "
                f"try again in {wait_ms} ms",
            )
        return RiskDecision(True, "accepted", Rule.ACCEPTED, self._state)

    def _state_refusal(self, intent: OrderIntent, view: AccountView) -> RiskDecision | None:
        state = self._state
        if state is TradingState.ACTIVE:
            return None
        action = intent.action
        rule = (
            Rule.DAILY_LOSS
            if self._day is not None and self._day.halted is not None
            else Rule.STATE
        )
        why = self.state_reason
        if state is TradingState.HALTED:
            if intent.origin is Origin.SIGNAL:
                return self._refuse(rule, f"trading is HALTED ({why}): signals are not executed")
            if action is Action.CLOSE or action is Action.CANCEL:
                return None
            return self._refuse(
                rule,
                f"trading is HALTED ({why}): only closing positions and cancelling pending orders",
            )
        if action is not Action.OPEN or reduces(intent, view):
            return None
        return self._refuse(
            rule, f"trading is REDUCING ({why}): only orders that reduce a position"
        )

    def _refuse(self, rule: Rule, reason: str) -> RiskDecision:
        return RiskDecision(False, reason, rule, self._state)

    # ------------------------------------------------------------------ state machine
    def _set_manual(self, state: TradingState, reason: str) -> StateChange:
        self._manual = state
        self._manual_reason = "" if state is TradingState.ACTIVE else reason
        change = self._update_state(StateCause.MANUAL, reason, always=True)
        assert change is not None  # always=True
        return change

    def _update_state(
        self, cause: StateCause, reason: str, *, always: bool = False
    ) -> StateChange | None:
        loss = self._day is not None and self._day.halted is not None
        effective = TradingState.HALTED if loss else self._manual
        if _SEVERITY[self._manual] > _SEVERITY[effective]:
            effective = self._manual
        if effective is self._state and not always:
            return None
        if loss and cause is StateCause.MANUAL and effective is TradingState.HALTED:
            reason = f"{reason}; still HALTED: {self.state_reason}"
        change = StateChange(
            effective, self._state, self._manual, cause, reason, self._clock.time()
        )
        self._state = effective
        self._changed_at = change.time_utc_s
        _log.info("trading state %s (%s): %s", effective.value, cause.value, reason)
        if self._journal is not None:
            self._journal.state_changed(change)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # a broken listener must not stop the kill switch
                _log.exception("a trading state listener failed")
        return change
