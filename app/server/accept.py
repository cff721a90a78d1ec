"""The bridge's exactly-once rules, without I/O: what to do with each client message.

The bridge used to decide store / re-ack / refuse inline in its socket loop, where the
rules could only be tested through a real socket, one hand-picked scenario at a time.
Here they are a plain class fed decoded messages and commit notices, so a property test
can throw arbitrary streams at them (duplicates, reorderings, gaps, lost markers,
reconnects) and check the invariants the delivery guarantee rests on:

* what is stored is exactly seqs ``1..N``, no gap and no repeat;
* an ack never names a seq that is not committed, and acks never go down.

Two seqs are tracked, because acks must wait for the disk but the reader must not:
``accepted`` is the highest seq handed to the store (possibly still in its queue),
``committed`` the highest seq the store reports durable. Only ``committed`` is ever
acked.

Every number that reaches SQLite stays within its signed 64-bit range: seqs are bounded
by validation (``< 2**63``) and counters saturate (:func:`saturating_add`) instead of
overflowing, since one overflowing counter write would fail every later commit of every
client. A hello may not claim acks further than :data:`MAX_RESUME_GAP` beyond what is
stored (:func:`resume`): one hello with ``resume_from`` 2^63-1 used to pin
``lost_batches`` at the maximum and leave its session at a seq no message can follow.

Tick values are judged by :func:`app.protocol.validation.validate_blocks` with the
session's clock: a message with any invalid tick is refused whole (``bad_tick``, naming
the seq, block, tick and reason) and nothing of it is stored, so an honest client's
message is either stored entirely or not at all, and the sender learns why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.protocol.codec import (
    MAX_TEXT,
    ClientMessage,
    Hello,
    Lost,
    ProtocolError,
    Ticks,
    ticks_batches,
)
from app.protocol.validation import (
    DEFAULT_TICK_RULES,
    TickRules,
    blocks_valid,
    describe,
    validate_blocks,
)
from app.ticks import TICK_DTYPE, TickBatch

#: SQLite's largest INTEGER; every seq and counter the bridge writes stays at or below it.
INT64_MAX: Final = 2**63 - 1
#: How far a hello's ``resume_from`` may run ahead of the stored ``last_seq``: a restored
#: database misses days of messages, not 2^63 (a million messages a day for 10,000 years).
MAX_RESUME_GAP: Final = 2**42


def saturating_add(value: int, increment: int) -> int:
    """``value + increment`` clamped to ``0..INT64_MAX``.

    Counters are statistics: pinned at the maximum they are still truthful ("at least
    this many"), whereas an integer SQLite cannot bind would make the transaction that
    writes them fail, and with it every later commit of every session.
    """
    return max(0, min(INT64_MAX, value + increment))


def resume(stored_last: int, resume_from: int, max_gap: int = MAX_RESUME_GAP) -> tuple[int, int]:
    """The hello rule: ``(last_seq to welcome with, batches to count as lost)``.

    A ``resume_from`` above what is stored means the store lost messages it had acked
    (the database was replaced or restored). The client no longer holds them, so
    insisting on them would refuse the session forever; instead the gap is adopted and
    counted. A claim more than ``max_gap`` beyond what is stored is refused
    (``bad_resume``): no restore loses that much, and adopting it would make the counter
    and the session's seqs meaningless.
    """
    if not 0 <= resume_from <= INT64_MAX:
        raise ValueError(f"resume_from {resume_from} is not in 0..2^63-1")
    if resume_from - stored_last > max_gap:
        raise ProtocolError(
            "bad_resume",
            f"resume_from {resume_from} is more than {max_gap} beyond the {stored_last} "
            "messages stored for this session",
        )
    if resume_from <= stored_last:
        return stored_last, 0
    return resume_from, resume_from - stored_last


# ------------------------------------------------------------------ decisions
@dataclass(frozen=True, slots=True)
class Accept:
    """Store message ``seq``. ``batches`` is empty for a ``Lost`` marker: the seq advances
    and ``lost_batches`` counts it, but no tick is stored."""

    seq: int
    batches: list[TickBatch]
    #: Ticks the client says a lost message held (0 for a ``Ticks`` message or unknown).
    lost_ticks: int = 0
    reason: str = ""
    #: Ticks and tick bytes of ``batches``, summed once: the bridge reads them several
    #: times per message (counters, budgets, group sizes).
    ticks: int = field(init=False)
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        n = sum(len(b.ticks) for b in self.batches)
        object.__setattr__(self, "ticks", n)
        object.__setattr__(self, "nbytes", n * TICK_DTYPE.itemsize)

    @property
    def lost(self) -> bool:
        return not self.batches


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A seq already accepted (a resend after a lost ack): count it, store nothing.

    ``reack`` is the committed seq to ack again, or ``None`` when the message is still
    waiting for its commit, whose cumulative ack is on the way anyway.
    """

    seq: int
    reack: int | None


@dataclass(frozen=True, slots=True)
class Refuse:
    """Send ``error`` with this code and close: nothing of the message is stored."""

    code: str
    message: str
    #: For ``bad_tick``: the :class:`app.protocol.validation.Reason` value.
    reason: str = ""

    @classmethod
    def of(cls, exc: ProtocolError) -> Refuse:
        return cls(exc.code, str(exc))

    @property
    def counter(self) -> str:
        """The name the refusal is counted under in ``refused_by_reason``."""
        return self.reason or self.code


Decision = Accept | Duplicate | Refuse


# ------------------------------------------------------------------ the rules
@dataclass(slots=True)
class SessionRules:
    """The rules for one connection of one session, from its welcome on.

    ``last_stored`` is the ``last_seq`` the welcome announced; a reconnect starts a new
    instance from what is committed then (the bridge commits everything the older
    connection accepted before it answers the newer one's hello).
    """

    last_stored: int
    tick_rules: TickRules = DEFAULT_TICK_RULES
    clock: Clock = SYSTEM_CLOCK
    accepted: int = field(init=False)
    committed: int = field(init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.last_stored <= INT64_MAX:
            raise ValueError(f"last_stored {self.last_stored} is not in 0..2^63-1")
        self.accepted = self.committed = self.last_stored

    def receive(self, message: ClientMessage) -> Decision:
        """What to do with the next message after the hello.

        The message is validated before the seq rules apply, as it always was: a
        malformed resend is refused, not silently re-acked.
        """
        try:
            if isinstance(message, Ticks):
                seq, batches = message.seq, ticks_batches(message)
                refusal = self._judge(seq, batches)
                if refusal is not None:
                    return refusal
                accept = Accept(seq, batches)
            elif isinstance(message, Lost):
                seq = message.seq
                _check_lost(message)
                accept = Accept(seq, [], message.ticks, message.reason[:MAX_TEXT])
            elif isinstance(message, Hello):
                raise ProtocolError("bad_message", "a second hello on one connection")
            else:  # pragma: no cover - the decoder only yields client messages
                raise ProtocolError("bad_message", f"unexpected {type(message).__name__}")
        except ProtocolError as exc:
            return Refuse.of(exc)
        if seq <= self.accepted:
            return Duplicate(seq, self.committed if seq <= self.committed else None)
        if seq != self.accepted + 1:
            return Refuse("seq_gap", f"expected seq {self.accepted + 1}, got {seq}")
        self.accepted = seq
        return accept

    def _judge(self, seq: int, batches: list[TickBatch]) -> Refuse | None:
        """The value rules over the whole message: the first invalid tick refuses it.

        The cheap all-valid check answers for honest messages; only a message it does not
        pass is judged row by row, to name the first bad tick and its reason.
        """
        now = now_msc(self.clock)
        if blocks_valid(batches, now_msc=now, rules=self.tick_rules):
            return None
        verdict, offsets = validate_blocks(batches, now_msc=now, rules=self.tick_rules)
        row = verdict.first_bad()
        if row is None:
            return None
        reason = verdict.reason(row)
        assert reason is not None
        block = int(offsets.searchsorted(row, side="right")) - 1
        bad = int((verdict.codes != 0).sum())
        batch = batches[block]
        tick = row - int(offsets[block])
        text = (
            f"seq {seq} block {block} ({batch.symbol[:20]!r}) tick {tick}: "
            f"{describe(batch.ticks, tick, reason)}; {bad} invalid tick(s), message refused"
        )
        return Refuse("bad_tick", text[:MAX_TEXT], reason.value)

    def commit(self, seq: int) -> int:
        """The store made everything up to ``seq`` durable; returns the seq to ack.

        Refuses (``ValueError``) a commit beyond what was accepted or going back: either
        would be a bug in the caller, and acking it could lose or double messages.
        """
        if not self.committed <= seq <= self.accepted:
            raise ValueError(
                f"commit of seq {seq} outside committed {self.committed}..accepted {self.accepted}"
            )
        self.committed = seq
        return seq

    def forget_pending(self) -> None:
        """A commit failed: what was accepted but not committed is gone (the client resends
        it on its next connection), so nothing may be acked beyond ``committed``."""
        self.accepted = self.committed


def _check_lost(message: Lost) -> None:
    """The bounds ``ticks_batches`` enforces for ``Ticks``, for the fields of a ``Lost``."""
    if not 1 <= message.seq <= INT64_MAX:
        raise ProtocolError("bad_message", "'seq' must be an integer in 1..2^63-1")
    if not 0 <= message.ticks <= INT64_MAX:
        raise ProtocolError("bad_message", "'ticks' must be an integer in 0..2^63-1")
