"""What the trader (or a signal) wants done, before any terminal or risk rule sees it.

One type for every trading wish, whatever its origin (the New Order dialog, one-click
buttons, ``trading-client trade``, a signal from the AI services), so that the risk engine,
the audit log and the execution path each have exactly one thing to look at. An intent
carries its own ``request_id``; the execution path writes it into the order's ``comment``
(``request_comment``), which is how, after a timeout, a worker restart or a crash, the
client finds out whether the terminal already has the order instead of sending it twice.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field

#: ``magic`` of every order this application sends (MT5's "expert id"): tells our orders
#: from the trader's own in the terminal, and is what the never-twice lookup filters on.
APP_MAGIC = 20_261_205
#: The prefix of the request id in an order's comment. MT5 keeps at most 31 characters
#: of a comment (and a broker may cut it further), so the id is short.
COMMENT_PREFIX = "tc:"


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class Action(enum.StrEnum):
    OPEN = "open"  # a market or pending order
    CLOSE = "close"  # close (part of) a position
    MODIFY = "modify"  # SL/TP of a position, or price/SL/TP of a pending order
    CANCEL = "cancel"  # remove a pending order


class OrderKind(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class Origin(enum.StrEnum):
    MANUAL = "manual"  # the window
    CLI = "cli"  # trading-client trade …
    SIGNAL = "signal"  # a signal from the AI services (accepted by the trader or automatic)


def new_request_id() -> str:
    """12 hex characters: unique enough for one account's lifetime, short enough for the
    31-character comment with the prefix."""
    return secrets.token_hex(6)


def request_comment(request_id: str) -> str:
    return f"{COMMENT_PREFIX}{request_id}"


def request_id_of(comment: str) -> str | None:
    """The request id in an order's or deal's comment, if it is one of ours."""
    if comment.startswith(COMMENT_PREFIX):
        return comment[len(COMMENT_PREFIX) :] or None
    return None


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One trading wish. Prices are absolute (``None``: none / market); volume in lots.

    ``ticket`` names the position (CLOSE, MODIFY of SL/TP) or the pending order (MODIFY,
    CANCEL) the intent is about. ``source`` is who asked: ``"manual"``, a CLI user, or
    the signal's source (e.g. ``"ma-cross"``), with ``signal_id`` set for signals.
    """

    action: Action
    symbol: str
    side: Side
    volume: float
    origin: Origin
    kind: OrderKind = OrderKind.MARKET
    price: float | None = None
    sl: float | None = None
    tp: float | None = None
    deviation: int = 10
    ticket: int | None = None
    source: str = "manual"
    signal_id: str | None = None
    terminal: str | None = None
    request_id: str = field(default_factory=new_request_id)

    @property
    def comment(self) -> str:
        return request_comment(self.request_id)


class Outcome(enum.StrEnum):
    EXECUTED = "executed"  # a deal was made (market order, close)
    PLACED = "placed"  # a pending order is on the books, or SL/TP/order modified
    REFUSED = "refused"  # the risk engine (or the trader) said no; nothing was sent
    REJECTED = "rejected"  # the terminal answered with an error retcode
    UNKNOWN = "unknown"  # no answer yet (timeout, worker gone): being reconciled


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """What became of one intent: the one answer the window, the CLI, the audit log and
    a signal's outcome report all show. ``retcode`` is the terminal's (None when nothing
    was sent); ``slippage_points`` is signed, positive = worse than asked."""

    request_id: str
    outcome: Outcome
    message: str
    retcode: int | None = None
    order: int = 0
    deal: int = 0
    position: int = 0
    price: float = 0.0
    volume: float = 0.0
    slippage_points: float | None = None
    latency_ms: float | None = None
