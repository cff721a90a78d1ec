"""The signal messages on the wire: round trips, and peers of before the feature."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from app.link.signal_desk import SignalDesk, not_wired
from app.protocol import codec


@pytest.mark.parametrize(
    "message",
    [
        codec.Signal("s", "src", "EURUSD", "sell", 2, 1, volume=0.5, sl=1.2, tp=1.1, price=1.15),
        codec.Signal("s", "src", "EURUSD", "buy", 2, 1, risk_pct=1.0, sl=1.0, comment="why"),
        codec.OutcomeStored("s"),
    ],
)
def test_bridge_messages_round_trip(message: codec.BridgeMessage) -> None:
    assert codec.decode_bridge(codec.encode(message)) == message


@pytest.mark.parametrize(
    "message",
    [
        codec.SignalReceived("s", 1_760_000_000_123),
        codec.SignalOutcome("s", "executed", "done", 7, 1.1, -0.5, 12.5),
        codec.SignalOutcome("s", "expired", "late"),
    ],
)
def test_client_messages_round_trip(message: codec.SignalMessage) -> None:
    assert codec.decode_client(codec.encode(message)) == message


def test_old_peers_name_no_feature() -> None:
    """A hello and a welcome as encoded before ``features`` existed decode with none;
    an old bridge ignores the new field (unknown fields are allowed)."""
    old_hello = msgspec.msgpack.encode(
        {"type": "hello", "client_id": "c", "session": "s", "resume_from": 0, "versions": [2]}
    )
    hello = codec.decode_client(old_hello)
    assert isinstance(hello, codec.Hello)
    assert hello.features == []
    old_welcome = msgspec.msgpack.encode(
        {"type": "welcome", "last_seq": 3, "max_frame_bytes": 4096, "version": 2}
    )
    welcome = codec.decode_bridge(old_welcome)
    assert isinstance(welcome, codec.Welcome)
    assert welcome.features == []


def test_a_damaged_book_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "signals.json"
    path.write_bytes(b'{"entries": [{"signal": 5}]')
    desk = SignalDesk(not_wired, path=path)
    assert desk.snapshot().entries == ()
    assert (tmp_path / "signals.corrupt").exists()
    assert not path.exists()


def test_the_store_caps_what_waits_for_one_client(tmp_path: Path) -> None:
    from app.server.signal_store import SignalStore  # noqa: PLC0415

    store = SignalStore(tmp_path / "b.sqlite")
    now = 1_760_000_000_000

    def one(sid: str, client: str = "c") -> str:
        return store.add(client, codec.Signal(sid, "s", "EURUSD", "buy", now + 60_000, now), now)

    assert [one(f"s{i}") for i in range(3)] == ["stored"] * 3
    assert store.add("c", codec.Signal("s3", "s", "X", "buy", now + 1, now), now, 3) == "full"
    assert one("s0") == "duplicate"
    assert one("other", "d") == "stored"  # another client's queue is its own
    assert store.mark_received("c", "s0", now)
    assert store.add("c", codec.Signal("s3", "s", "X", "buy", now + 1, now), now, 3) == "stored"
    store.close()
