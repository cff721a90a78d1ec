"""The bridge message format: round trips exactly, and refuses malformed input whole."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.protocol import codec
from app.ticks import TICK_DTYPE, TickArray


def ticks(n: int, start: int = 1_732_440_000_000) -> TickArray:
    t = np.zeros(n, dtype=TICK_DTYPE)
    t["time_msc"] = start + np.arange(n) // 3
    t["time"] = t["time_msc"] // 1000
    t["bid"] = 1.05 + np.arange(n) * 1e-5
    t["ask"] = t["bid"] + 0.00012
    t["volume"] = np.arange(n) % 7
    t["volume_real"] = t["volume"] * 0.5
    t["flags"] = 6
    return t


@given(n=st.integers(1, 300), seq=st.integers(1, 2**53))
def test_ticks_round_trip_exactly(n: int, seq: int) -> None:
    blocks = [codec.Block("EURUSD", ticks(n)), codec.Block("XAUUSD", ticks(2, 1_732_440_100_000))]
    got_seq, got = codec.parse_ticks(codec.decode(codec.encode_ticks(seq, blocks)))
    assert got_seq == seq
    assert [b.symbol for b in got] == ["EURUSD", "XAUUSD"]
    for a, b in zip(blocks, got, strict=True):
        assert np.array_equal(a.ticks, b.ticks)


def test_hello_round_trip() -> None:
    hello = codec.parse_hello(codec.decode(codec.encode_hello("desk", "s1", 41)))
    assert hello == codec.Hello("desk", "s1", 41)


def _doc(**block: object) -> dict[str, object]:
    base = orjson.loads(codec.encode_ticks(1, [codec.Block("EURUSD", ticks(3))]))
    base["blocks"][0].update(block)
    return base


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (_doc(bid=[1.0, 2.0]), "one length"),
        (_doc(bid=["1.0", "2", "3"]), "not numeric"),
        (_doc(time_msc=[3, 2, 1]), "backwards"),
        (_doc(symbol=""), "symbol"),
        ({"type": "ticks", "seq": 0, "blocks": []}, "seq"),
        ({"type": "ticks", "seq": 1, "blocks": []}, "blocks"),
        ({"type": "ticks", "seq": True, "blocks": []}, "seq"),
    ],
)
def test_malformed_ticks_are_refused(doc: dict[str, object], needle: str) -> None:
    with pytest.raises(codec.ProtocolError, match=needle) as info:
        codec.parse_ticks(codec.decode(orjson.dumps(doc)))
    assert info.value.code == "bad_message"


def test_nan_prices_are_refused() -> None:
    raw = codec.encode_ticks(1, [codec.Block("EURUSD", ticks(2))]).replace(b"1.05,", b"NaN,", 1)
    with pytest.raises(codec.ProtocolError):
        codec.parse_ticks(codec.decode(raw))


@pytest.mark.parametrize("frame", [b"not json", b"[1,2]", b'{"no_type": 1}', b'{"type": 5}'])
def test_frames_that_are_not_messages_are_refused(frame: bytes) -> None:
    with pytest.raises(codec.ProtocolError):
        codec.decode(frame)


def test_hello_must_come_first_and_match_the_version() -> None:
    with pytest.raises(codec.ProtocolError, match="hello first"):
        codec.parse_hello({"type": "ticks"})
    with pytest.raises(codec.ProtocolError, match="version") as info:
        codec.parse_hello(
            {"type": "hello", "version": 99, "client_id": "a", "session": "b", "resume_from": 0}
        )
    assert info.value.code == "bad_version"
