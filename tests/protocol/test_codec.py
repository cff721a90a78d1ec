"""Protocol v2's codec: every message round-trips exactly, the frame size is known before
encoding, and every malformed input is refused whole with the right code."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.protocol import codec
from app.protocol.codec import (
    FRAME_OVERHEAD,
    MAX_TEXT,
    TICK_BYTES,
    Ack,
    Error,
    Hello,
    Lost,
    ProtocolError,
    Ticks,
    Welcome,
)
from app.ticks import TICK_DTYPE, TickArray, TickBatch

START = 1_732_440_000_000


def ticks(n: int, start: int = START) -> TickArray:
    t = np.zeros(n, dtype=TICK_DTYPE)
    t["time_msc"] = start + np.arange(n) // 3
    t["time"] = t["time_msc"] // 1000
    t["bid"] = 1.05 + np.arange(n) * 1e-5
    t["ask"] = t["bid"] + 0.00012
    t["volume"] = np.arange(n) % 7
    t["volume_real"] = t["volume"] * 0.5
    t["flags"] = 6
    return t


#: Any text UTF-8 can carry (no lone surrogates).
TEXT = st.characters(exclude_categories=["Cs"])
SYMBOLS = st.text(
    st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=codec.MAX_SYMBOL_LENGTH
)
SEQS = st.integers(1, 2**63 - 1)


#: Values a column must carry unchanged (extremes, signed zero, subnormals).
EDGE_FLOATS = np.array([0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, -1e300, 1e-300])


@st.composite
def tick_arrays(draw: st.DrawFn) -> TickArray:
    """Valid ticks with arbitrary field values: hypothesis picks the shape, the start and
    a seed; numpy fills the columns (drawing each value through hypothesis is 20x slower
    and finds nothing more in a byte copy)."""
    n = draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    t = np.zeros(n, dtype=TICK_DTYPE)
    t["time_msc"] = draw(st.integers(0, 2**50)) + np.cumsum(rng.integers(0, 10**6, n))
    t["time"] = t["time_msc"] // 1000
    for name in ("bid", "ask", "last", "volume_real"):
        values = rng.normal(1.0, 1e3, n)
        edges = rng.random(n) < 0.2
        values[edges] = rng.choice(EDGE_FLOATS, int(edges.sum()))
        t[name] = values
    t["volume"] = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    t["flags"] = rng.integers(0, 2**32 - 1, n, dtype=np.uint32, endpoint=True)
    return t


BATCHES = st.lists(st.builds(TickBatch, SYMBOLS, tick_arrays()), min_size=1, max_size=6)


# ------------------------------------------------------------------ round trips
@settings(max_examples=100, deadline=None)
@given(seq=SEQS, batches=BATCHES)
def test_ticks_round_trip_bit_for_bit(seq: int, batches: list[TickBatch]) -> None:
    frame = codec.encode_ticks(seq, batches)
    message = codec.decode_client(frame)
    assert isinstance(message, Ticks)
    assert message.seq == seq
    got = codec.ticks_batches(message)
    assert [b.symbol for b in got] == [b.symbol for b in batches]
    for sent, back in zip(batches, got, strict=True):
        assert back.ticks.dtype == TICK_DTYPE
        assert back.ticks.tobytes() == sent.ticks.tobytes()
    assert codec.encode(message) == frame


def test_non_contiguous_and_big_endian_ticks_are_sent_as_little_endian_records() -> None:
    base = ticks(10)
    strided = base[::2]
    swapped = base.astype(TICK_DTYPE.newbyteorder(">"))
    for source, expected in ((strided, base[::2]), (swapped, base)):
        message = codec.decode_client(codec.encode_ticks(1, [TickBatch("EURUSD", source)]))
        assert isinstance(message, Ticks)
        assert np.array_equal(codec.ticks_batches(message)[0].ticks, expected)


def test_decoded_ticks_are_read_only_views() -> None:
    message = codec.decode_client(codec.encode_ticks(1, [TickBatch("EURUSD", ticks(3))]))
    assert isinstance(message, Ticks)
    batch = codec.ticks_batches(message)[0]
    assert not batch.ticks.flags.writeable


IDS = st.text(TEXT, min_size=1, max_size=codec.MAX_ID_LENGTH)
CLIENT_MESSAGES = st.one_of(
    st.builds(
        Hello,
        IDS,
        IDS,
        st.integers(0, 2**63 - 1),
        st.lists(st.integers(0, 2**32), max_size=4),
        st.none() | st.text(TEXT, max_size=50),
    ),
    st.builds(Lost, SEQS, st.integers(0, 2**63 - 1), st.text(TEXT, max_size=MAX_TEXT)),
)
BRIDGE_MESSAGES = st.one_of(
    st.builds(Welcome, st.integers(0, 2**63 - 1), st.integers(4096, 2**40), st.integers(1, 9)),
    st.builds(Ack, st.integers(0, 2**63 - 1)),
    st.builds(Error, st.text(TEXT, max_size=30), st.text(TEXT, max_size=MAX_TEXT)),
)


@given(message=CLIENT_MESSAGES)
def test_client_messages_round_trip(message: Hello | Lost) -> None:
    assert codec.decode_client(codec.encode(message)) == message


@given(message=BRIDGE_MESSAGES)
def test_bridge_messages_round_trip(message: Welcome | Ack | Error) -> None:
    assert codec.decode_bridge(codec.encode(message)) == message


def test_defaults_of_an_older_or_terser_peer() -> None:
    hello = codec.decode_client(
        msgspec.msgpack.encode(
            {"type": "hello", "client_id": "a", "session": "b", "resume_from": 3}
        )
    )
    assert hello == Hello("a", "b", 3, [2], None)
    welcome = codec.decode_bridge(msgspec.msgpack.encode({"type": "welcome", "last_seq": 7}))
    assert welcome == Welcome(7, codec.DEFAULT_MAX_FRAME_BYTES, codec.PROTOCOL_VERSION)
    lost = codec.decode_client(msgspec.msgpack.encode({"type": "lost", "seq": 4, "extra": 1}))
    assert lost == Lost(4, 0, "")


# ------------------------------------------------------------------ exact sizes
SEQ_EDGES = [1, 127, 128, 255, 256, 2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**63 - 1]
#: Symbol byte lengths around the str header sizes (fixstr < 32, str8 < 256, str16).
SYMBOL_EDGES = ["E", "X" * 31, "X" * 32, "€" * 21, "X" * 255, "X" * 256, "é" * 200]
#: Tick counts whose bytes cross the bin header sizes (bin8 < 256, bin16 < 65536).
TICK_EDGES = [1, 4, 5, 1092, 1093]


@pytest.mark.parametrize("seq", SEQ_EDGES)
@pytest.mark.parametrize("n_blocks", [1, 15, 16, 17])
def test_frame_size_is_exact_at_header_edges(seq: int, n_blocks: int) -> None:
    batches = [
        TickBatch(SYMBOL_EDGES[i % len(SYMBOL_EDGES)], ticks(TICK_EDGES[i % len(TICK_EDGES)]))
        for i in range(n_blocks)
    ]
    blocks = sum(codec.block_bytes(b.symbol, len(b)) for b in batches)
    assert codec.ticks_frame_bytes(seq, n_blocks, blocks) == len(codec.encode_ticks(seq, batches))


@pytest.mark.parametrize("n_blocks", [2**16 - 1, 2**16])
def test_frame_size_is_exact_past_the_array16_header(n_blocks: int) -> None:
    one = ticks(1)
    batches = [TickBatch("S", one)] * n_blocks
    blocks = n_blocks * codec.block_bytes("S", 1)
    assert codec.ticks_frame_bytes(9, n_blocks, blocks) == len(codec.encode_ticks(9, batches))


@settings(max_examples=150, deadline=None)
@given(
    seq=st.integers(1, 2**64 - 1) | st.sampled_from(SEQ_EDGES),
    shape=st.lists(
        st.tuples(
            st.text(TEXT, min_size=1, max_size=300) | st.sampled_from(SYMBOL_EDGES),
            st.integers(1, 1200) | st.sampled_from(TICK_EDGES),
        ),
        min_size=0,
        max_size=20,
    ),
)
@example(seq=2**64 - 1, shape=[("E", 1093)])
def test_frame_size_is_exact(seq: int, shape: list[tuple[str, int]]) -> None:
    batches = [TickBatch(symbol, ticks(n)) for symbol, n in shape]
    blocks = sum(codec.block_bytes(symbol, n) for symbol, n in shape)
    frame = codec.encode_ticks(seq, batches)
    assert codec.ticks_frame_bytes(seq, len(shape), blocks) == len(frame)
    assert len(frame) - blocks <= FRAME_OVERHEAD


@given(symbol=SYMBOLS, budget=st.integers(0, 2**20))
def test_max_ticks_per_block_fits_and_wastes_less_than_a_tick(symbol: str, budget: int) -> None:
    n = codec.max_ticks_per_block(symbol, budget)
    if n == 0:
        assert codec.block_bytes(symbol, 1) > budget - 3
        return
    assert codec.block_bytes(symbol, n) <= budget
    assert budget - codec.block_bytes(symbol, n) < TICK_BYTES + 3
    assert len(msgspec.msgpack.encode((symbol, ticks(n).tobytes()))) == codec.block_bytes(symbol, n)


def test_the_smallest_frame_limit_holds_a_hello_and_a_one_tick_message() -> None:
    hello = Hello("x" * codec.MAX_ID_LENGTH, "y" * codec.MAX_ID_LENGTH, 2**63 - 1)
    assert len(codec.encode(hello)) <= codec.MIN_MAX_FRAME_BYTES
    one = [TickBatch("X" * codec.MAX_SYMBOL_LENGTH, ticks(1))]
    assert len(codec.encode_ticks(2**63 - 1, one)) <= codec.MIN_MAX_FRAME_BYTES


# ------------------------------------------------------------------ refusals
def _raw(n: int = 3, **columns: Any) -> bytes:
    t = ticks(n)
    for name, value in columns.items():
        t[name] = value
    return t.tobytes()


def _pack(doc: Any) -> bytes:
    return msgspec.msgpack.encode(doc)


FRAMES_NOT_MESSAGES = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\xc1", id="never-used byte"),
    pytest.param(codec.encode_ticks(1, [TickBatch("E", ticks(3))])[:-5], id="truncated"),
    pytest.param(_pack([1, 2]), id="array"),
    pytest.param(_pack({"no_type": 1}), id="no type"),
    pytest.param(_pack({"type": 5}), id="type not a string"),
    pytest.param(_pack({"type": "subscribe"}), id="unknown type"),
    pytest.param(_pack({"type": "welcome", "last_seq": 1}), id="a bridge message"),
    pytest.param(_pack({"type": "hello", "client_id": "a"}), id="missing fields"),
    pytest.param(_pack({"type": "ticks", "seq": "1", "blocks": []}), id="seq a string"),
    pytest.param(_pack({"type": "ticks", "seq": 1.0, "blocks": []}), id="seq a float"),
    pytest.param(_pack({"type": "ticks", "seq": True, "blocks": []}), id="seq a bool"),
    pytest.param(_pack({"type": "ticks", "seq": 1, "blocks": [["E"]]}), id="block of one"),
    pytest.param(_pack({"type": "ticks", "seq": 1, "blocks": [["E", "abc"]]}), id="ticks as str"),
    pytest.param(_pack({"type": "ticks", "seq": 1, "blocks": [[1, b""]]}), id="symbol not str"),
    pytest.param(b"\xcf", id="uint64 header without its bytes"),
    pytest.param(_pack({"type": "lost", "seq": None}), id="lost seq null"),
    pytest.param("not JSON at all", id="text, not JSON"),
    pytest.param('{"type": "subscribe"}', id="text, unknown v1 type"),
    pytest.param("[1, 2]", id="text, JSON array"),
]


@pytest.mark.parametrize("frame", FRAMES_NOT_MESSAGES)
def test_frames_that_are_not_client_messages_are_bad_message(frame: bytes | str) -> None:
    with pytest.raises(ProtocolError) as info:
        codec.decode_client(frame)
    assert info.value.code == "bad_message"
    assert len(str(info.value)) <= MAX_TEXT


@pytest.mark.parametrize(
    "frame",
    [b"\xc1", _pack({"type": "ack"}), _pack({"type": "hello"}), codec.encode(Ack(-1))[:1]],
)
def test_frames_that_are_not_bridge_messages_are_bad_message(frame: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        codec.decode_bridge(frame)
    assert info.value.code == "bad_message"


V1_FRAMES = [
    {"type": "hello", "version": 1, "client_id": "a", "session": "b", "resume_from": 0},
    {"type": "hello", "client_id": "a", "session": "b"},
    {"type": "ticks", "seq": 1, "blocks": [{"symbol": "E", "time_msc": [1], "bid": [1.0]}]},
    {"type": "welcome", "last_seq": 3},
    {"type": "error", "code": "seq_gap", "message": "expected seq 2, got 3"},
    {"type": "hello", "version": "x" * 10_000},
]


@pytest.mark.parametrize("doc", V1_FRAMES)
def test_v1_text_frames_are_bad_version_on_both_sides(doc: dict[str, Any]) -> None:
    text = orjson.dumps(doc).decode()
    for decode in (codec.decode_client, codec.decode_bridge):
        with pytest.raises(ProtocolError) as info:
            decode(text)
        assert info.value.code == "bad_version"
        assert "2" in str(info.value)
        assert len(str(info.value)) <= MAX_TEXT


@pytest.mark.parametrize(
    ("blocks", "seq", "needle"),
    [
        ([("EURUSD", _raw())], 0, "seq"),
        ([("EURUSD", _raw())], -1, "seq"),
        ([("EURUSD", _raw())], 2**63, "seq"),
        ([], 1, "non-empty"),
        ([("", _raw())], 1, "symbol"),
        (
            [("X" * (codec.MAX_SYMBOL_LENGTH + 1), _raw())],
            1,
            "symbol",
        ),
        ([("EUR\nUSD", _raw())], 1, "symbol"),
        ([("EURUSD", b"")], 1, "multiple"),
        ([("EURUSD", _raw()[:-1])], 1, "multiple"),
        ([("EURUSD", _raw() + b"\0")], 1, "multiple"),
        ([("EURUSD", _raw()), ("EUR\x1b[31m", _raw())], 1, "block 1"),
    ],
)
def test_malformed_ticks_are_refused_whole(
    blocks: list[tuple[str, bytes]], seq: int, needle: str
) -> None:
    message = codec.decode_client(codec.encode(Ticks(seq, blocks)))
    assert isinstance(message, Ticks)
    with pytest.raises(ProtocolError, match=needle) as info:
        codec.ticks_batches(message)
    assert info.value.code == "bad_message"
    assert len(str(info.value)) <= MAX_TEXT


@pytest.mark.parametrize(
    ("hello", "code", "needle"),
    [
        (Hello("", "s", 0), "bad_message", "client_id"),
        (Hello("c", "", 0), "bad_message", "session"),
        (Hello("c" * (codec.MAX_ID_LENGTH + 1), "s", 0), "bad_message", "client_id"),
        (Hello("c", "s\x00", 0), "bad_message", "session"),
        (Hello("c", "s", -1), "bad_message", "resume_from"),
        (Hello("c", "s", 2**63), "bad_message", "resume_from"),
        (Hello("c", "s", 0, versions=[]), "bad_version", "versions"),
        (Hello("c", "s", 0, versions=[1]), "bad_version", "versions"),
        (Hello("c", "s", 0, versions=list(range(3, 5000))), "bad_version", "versions"),
    ],
)
def test_hellos_the_bridge_cannot_serve_are_refused(hello: Hello, code: str, needle: str) -> None:
    decoded = codec.decode_client(codec.encode(hello))
    assert isinstance(decoded, Hello)
    with pytest.raises(ProtocolError, match=needle) as info:
        codec.check_hello(decoded)
    assert info.value.code == code
    assert len(str(info.value)) <= MAX_TEXT


def test_a_good_hello_passes() -> None:
    codec.check_hello(Hello("desk-1", "5f0c", 2**63 - 1, versions=[3, 2]))


# ------------------------------------------------------------------ frames as text
def test_to_text_shows_ticks_as_rows_and_hides_the_credential() -> None:
    frame = codec.encode_ticks(5, [TickBatch("EURUSD", ticks(30)), TickBatch("X", ticks(2))])
    doc = codec.to_text(frame, rows=3)
    assert (doc["type"], doc["seq"]) == ("ticks", 5)
    first, second = doc["blocks"]
    assert (first["n"], len(first["rows"]), first["elided"]) == (30, 6, 24)
    assert first["columns"] == list(TICK_DTYPE.names or ())
    assert first["rows"][0][first["columns"].index("time_msc")] == START
    assert (second["n"], len(second["rows"]), second["elided"]) == (2, 2, 0)
    orjson.dumps(doc)  # JSON-able
    hello = codec.to_text(codec.encode(Hello("c", "s", 1, credential="secret-token")))
    assert hello["credential"] == "***"
    assert "secret" not in orjson.dumps(hello).decode()
    assert codec.to_text(codec.encode(Ack(3))) == {"type": "ack", "seq": 3}
