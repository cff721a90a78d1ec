"""The bridge's exactly-once rules without sockets: arbitrary message streams, checked
against the invariants delivery rests on (stored seqs are 1..N without gap or repeat;
acks never exceed what is committed and never go down)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.protocol.codec import (
    TICK_BYTES,
    Hello,
    Lost,
    ProtocolError,
    Ticks,
    decode_client,
    encode_ticks,
)
from app.server.accept import (
    INT64_MAX,
    MAX_RESUME_GAP,
    Accept,
    Duplicate,
    Refuse,
    SessionRules,
    resume,
    saturating_add,
)
from app.ticks import TICK_DTYPE, TickBatch

START_MSC = 1_732_440_000_000


def ticks_for(seq: int, n: int = 2) -> TickBatch:
    """Ticks that name their seq, so a stored message can be traced to what was sent."""
    ticks = np.zeros(n, dtype=TICK_DTYPE)
    ticks["time_msc"] = START_MSC + (seq % 2**40) * 10 + np.arange(n)
    ticks["time"] = ticks["time_msc"] // 1000
    ticks["bid"] = 1.0
    ticks["ask"] = 1.1
    return TickBatch("EURUSD", ticks)


def ticks_msg(seq: int) -> Ticks:
    """A ``Ticks`` message as the bridge sees it: encoded and decoded again."""
    if not 0 <= seq < 2**64:  # msgspec cannot encode it; the decoder would never yield it
        return Ticks(seq, [("EURUSD", ticks_for(0).ticks.tobytes())])
    msg = decode_client(encode_ticks(seq, [ticks_for(seq)]))
    assert isinstance(msg, Ticks)
    return msg


@dataclass
class World:
    """A store and the acks one client saw, driven through the rules."""

    rules: SessionRules = field(default_factory=lambda: SessionRules(0))
    pending: list[Accept] = field(default_factory=list)
    #: (seq, what): "ticks" or "lost", and (first seq, "adopted") for the range a resume
    #: beyond what was stored skipped (kept as one entry: it can span 2**63 seqs).
    stored: list[tuple[int, str]] = field(default_factory=list)
    adopted_to: dict[int, int] = field(default_factory=dict)
    acks: list[int] = field(default_factory=list)

    @property
    def last(self) -> int:
        if not self.stored:
            return 0
        seq, what = self.stored[-1]
        return self.adopted_to[seq] if what == "adopted" else seq

    def check(self) -> None:
        expected = 1
        for seq, what in self.stored:
            assert seq == expected
            expected = (self.adopted_to[seq] if what == "adopted" else seq) + 1
        assert self.acks == sorted(self.acks)
        assert all(ack <= self.last for ack in self.acks)
        assert self.rules.committed <= self.rules.accepted
        assert self.rules.accepted == self.rules.committed + len(self.pending)

    def deliver(self, message: Ticks | Lost | Hello) -> bool:
        """Feed one message; False when the connection got refused."""
        before = self.rules.accepted
        decision = self.rules.receive(message)
        if isinstance(decision, Refuse):
            assert self.rules.accepted == before
            return False
        if isinstance(decision, Duplicate):
            assert decision.seq <= before == self.rules.accepted
            if decision.reack is not None:
                assert decision.reack == self.rules.committed
                self.acks.append(decision.reack)
            return True
        assert decision.seq == before + 1 == self.rules.accepted
        if isinstance(message, Ticks):
            assert [b.symbol for b in decision.batches] == ["EURUSD"]
            assert np.array_equal(decision.batches[0].ticks, ticks_for(decision.seq).ticks)
        else:
            assert decision.lost
            assert decision.batches == []
        self.pending.append(decision)
        return True

    def commit(self, n: int) -> None:
        """The store commits the first ``n`` pending messages as one group."""
        group, self.pending = self.pending[:n], self.pending[n:]
        if not group:
            return
        assert group[0].seq == self.last + 1
        self.stored += [(a.seq, "lost" if a.lost else "ticks") for a in group]
        self.acks.append(self.rules.commit(self.last))

    def reconnect(self, failed: bool, resume_from: int) -> None:
        """The connection ends (its accepted messages are committed unless the commit
        failed) and a new one says hello with ``resume_from``."""
        if failed:
            self.rules.forget_pending()
            self.pending = []
        else:
            self.commit(len(self.pending))
        # The model lets any gap through (max_gap=INT64_MAX) to reach the top seqs.
        new_last, lost = resume(self.last, resume_from, INT64_MAX)
        assert lost == max(0, resume_from - self.last)
        if lost:
            self.adopted_to[self.last + 1] = new_last
            self.stored.append((self.last + 1, "adopted"))
        self.rules = SessionRules(new_last)


def message_for(world: World, kind: str, offset: int) -> Ticks | Lost | Hello:
    accepted = world.rules.accepted
    seq = {
        "next": accepted + 1,
        "dup": max(1, accepted - offset),
        "gap": accepted + 2 + offset,
        "any": offset,
    }
    if kind == "hello":
        return Hello("c", "s", 0)
    if kind == "lost":
        return Lost(accepted + 1, ticks=offset % 1000)
    if kind == "lost_dup":
        return Lost(seq["dup"])
    if kind == "malformed":
        return Ticks(accepted + 1, [("EURUSD", b"x" * (TICK_BYTES + 1))])
    return ticks_msg(seq[kind])


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("send"),
            st.sampled_from(
                ["next"] * 6 + ["dup", "gap", "any", "lost", "lost_dup", "hello", "malformed"]
            ),
            st.integers(0, 5) | st.integers(-(2**64), 2**64),
        ),
        st.tuples(st.just("commit"), st.integers(1, 8), st.just(0)),
        st.tuples(st.just("reconnect"), st.booleans(), st.integers(0, 3)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, start=st.sampled_from([0, 0, 10, INT64_MAX - 5]))
def test_any_message_stream_keeps_the_delivery_invariants(
    ops: list[tuple[str, object, int]], start: int
) -> None:
    world = World()
    world.reconnect(False, start)
    for op, arg, n in ops:
        if op == "send":
            assert isinstance(arg, str)
            offset = abs(n) % 6 if arg in ("dup", "gap") else n
            if not world.deliver(message_for(world, arg, offset)):
                world.reconnect(False, 0)
        elif op == "commit":
            world.commit(int(str(arg)))
        else:
            # resume_from: what the client holds an ack for (a lower value is harmless;
            # a higher one is the "database replaced" case, tested separately).
            world.reconnect(bool(arg), max(0, max(world.acks, default=0) - n))
        world.check()
    world.reconnect(False, 0)
    world.check()
    assert world.rules.accepted == world.rules.committed == world.last


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 40),
    chaos=st.lists(
        st.tuples(
            st.sampled_from(["drop_ack", "dup", "swap", "cut", "fail", "lose"]), st.booleans()
        ),
        max_size=60,
    ),
)
def test_an_honest_client_gets_every_message_stored_exactly_once(
    count: int, chaos: list[tuple[str, bool]]
) -> None:
    """A client that resends everything unacked after each reconnect, over a network that
    duplicates, reorders and cuts, ends with 1..count stored once each, in order."""
    world = World()
    lost = {seq for seq in range(1, count + 1) if seq % 7 == 0}  # damaged spool records
    acked = 0
    events = iter(chaos)
    for _ in range(10 * count + 10):
        if acked >= count:
            break
        world.reconnect(False, acked)
        queue: list[Ticks | Lost] = [
            Lost(seq, 2) if seq in lost else ticks_msg(seq)
            for seq in range(world.last + 1, count + 1)
        ]
        while queue:
            event, flag = next(events, ("none", False))
            if event == "dup" and world.last:
                queue.insert(
                    0, ticks_msg(world.last) if world.last not in lost else Lost(world.last)
                )
            elif event == "swap" and len(queue) > 1 and flag:
                queue[0], queue[1] = queue[1], queue[0]
            elif event == "cut":
                break
            elif event == "fail":
                world.rules.forget_pending()
                world.pending = []
                break
            if not world.deliver(queue.pop(0)):
                break  # refused (the swap made a gap): reconnect and resend
            if event != "drop_ack" or not flag:  # else: the commit is late
                world.commit(len(world.pending))
            if event != "drop_ack":  # else: the ack got lost on the way
                acked = max(world.acks, default=0)
            world.check()
    world.reconnect(False, acked)
    world.check()
    assert world.stored == [
        (seq, "lost" if seq in lost else "ticks") for seq in range(1, count + 1)
    ]


def test_the_rules_in_plain_cases() -> None:
    rules = SessionRules(3)
    assert rules.receive(ticks_msg(3)) == Duplicate(3, 3)
    accept = rules.receive(ticks_msg(4))
    assert isinstance(accept, Accept)
    assert (accept.seq, accept.ticks, accept.lost) == (4, 2, False)
    assert rules.receive(ticks_msg(4)) == Duplicate(4, None)  # its ack is on the way
    assert rules.receive(ticks_msg(6)) == Refuse("seq_gap", "expected seq 5, got 6")
    lost = rules.receive(Lost(5, ticks=10, reason="crc mismatch"))
    assert isinstance(lost, Accept)
    assert lost.lost
    assert (lost.lost_ticks, lost.reason) == (10, "crc mismatch")
    assert rules.commit(5) == 5
    assert rules.receive(Lost(2)) == Duplicate(2, 5)
    refused = rules.receive(Hello("c", "s", 0))
    assert isinstance(refused, Refuse)
    assert refused.code == "bad_message"
    with pytest.raises(ValueError, match="outside"):
        rules.commit(4)
    with pytest.raises(ValueError, match="outside"):
        rules.commit(6)


@pytest.mark.parametrize(
    "message",
    [
        Lost(0),
        Lost(-1),
        Lost(2**63),
        Lost(1, ticks=-1),
        Lost(1, ticks=2**63),
        Ticks(0, [("EURUSD", ticks_for(0).ticks.tobytes())]),
        Ticks(2**63, [("EURUSD", ticks_for(0).ticks.tobytes())]),
        Ticks(1, []),
        Ticks(1, [("", ticks_for(1).ticks.tobytes())]),
    ],
)
def test_out_of_range_or_malformed_messages_are_refused_as_bad_message(
    message: Ticks | Lost,
) -> None:
    rules = SessionRules(0)
    decision = rules.receive(message)
    assert isinstance(decision, Refuse)
    assert decision.code == "bad_message"
    assert rules.accepted == 0


def test_a_session_at_the_top_of_the_seq_range_refuses_instead_of_overflowing() -> None:
    rules = SessionRules(INT64_MAX)
    assert isinstance(rules.receive(Lost(INT64_MAX)), Duplicate)
    for message in (Lost(2**63), ticks_msg(2**63)):
        decision = rules.receive(message)
        assert isinstance(decision, Refuse)
        assert decision.code == "bad_message"
    with pytest.raises(ValueError, match="last_stored"):
        SessionRules(2**63)


def test_resume_and_saturation() -> None:
    assert resume(5, 3) == (5, 0)
    assert resume(5, 9) == (9, 4)
    assert resume(0, INT64_MAX, INT64_MAX) == (INT64_MAX, INT64_MAX)
    # By default a claim beyond MAX_RESUME_GAP is refused (issue #13: 2^63-1 hellos).
    with pytest.raises(ProtocolError, match="resume_from") as info:
        resume(0, INT64_MAX)
    assert info.value.code == "bad_resume"
    assert resume(7, 7 + MAX_RESUME_GAP) == (7 + MAX_RESUME_GAP, MAX_RESUME_GAP)
    with pytest.raises(ValueError, match="resume_from"):
        resume(0, 2**63)
    with pytest.raises(ValueError, match="resume_from"):
        resume(0, -1)
    assert saturating_add(INT64_MAX, INT64_MAX) == INT64_MAX
    assert saturating_add(INT64_MAX - 1, 1) == INT64_MAX
    assert saturating_add(3, 4) == 7
