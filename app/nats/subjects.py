"""The contract between publishers and consumers of the tick stream: names, ids, headers.

Why one block per NATS message: a subject per client and symbol (``ticks.<client>.<sym>``)
lets a consumer or an AI service subscribe to one symbol, or one client, with a wildcard,
and JetStream's subject filters do the routing. A link message (one ``seq``) may hold
blocks of several symbols, so it is published as one NATS message per block, each a
protocol v2 ``ticks`` frame with that single block; the link's message counts as
acknowledged once every block's publish ack is in.

Why this message id: JetStream drops a message whose ``Nats-Msg-Id`` it saw within the
stream's duplicate window. ``<client>/<session>/<seq>/<idx>`` is exactly what the link
resends after a reconnect or a crash (same session and seq, the spool keeps them), so a
resend is a duplicate the cluster drops. Beyond the window the consumer still stores a
block at most once: its key is the same four parts (the bridge's ``tick_blocks`` primary key).

Subject tokens may not contain ``.``, ``*``, ``>`` or whitespace, but broker symbols do
(``EURUSD.m``, ``US30#``): tokens are percent-encoded, reversibly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.protocol import codec
from app.ticks import TickBatch

#: Root of the tick subjects; the stream listens on ``ticks.>``.
TICKS_ROOT = "ticks"
#: Root of the signal subjects (AI service → client) and the outcomes (client → services).
SIGNALS_ROOT = "signals"
OUTCOMES_ROOT = "outcomes"

#: Headers every tick message carries besides ``Nats-Msg-Id`` (consumers need no parsing
#: of the id to know where a block belongs).
H_CLIENT = "Tc-Client"
H_SESSION = "Tc-Session"
H_SEQ = "Tc-Seq"
H_IDX = "Tc-Idx"
#: How many blocks the link message ``seq`` has (a consumer can tell a message is whole).
H_BLOCKS = "Tc-Blocks"
MSG_ID = "Nats-Msg-Id"

_SAFE = re.compile(r"[A-Za-z0-9_\-]")


def token(text: str) -> str:
    """``text`` as one subject token: every character outside ``[A-Za-z0-9_-]`` as ``%XX``
    (UTF-8 bytes), so ``EURUSD.m`` → ``EURUSD%2Em``; reversible by :func:`untoken`."""
    if not text:
        raise ValueError("a subject token cannot be empty")
    return "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode()) for ch in text
    )


def untoken(tok: str) -> str:
    """The text :func:`token` encoded."""
    out = bytearray()
    i = 0
    while i < len(tok):
        if tok[i] == "%":
            out.append(int(tok[i + 1 : i + 3], 16))
            i += 3
        else:
            out.extend(tok[i].encode())
            i += 1
    return out.decode()


def ticks_subject(client_id: str, symbol: str) -> str:
    """Where one client's blocks of one symbol are published."""
    return f"{TICKS_ROOT}.{token(client_id)}.{token(symbol)}"


def client_ticks_filter(client_id: str) -> str:
    """A subscription filter for every symbol of one client."""
    return f"{TICKS_ROOT}.{token(client_id)}.>"


#: The symbol token of a ``lost`` marker (``%00``: no broker symbol can encode to it,
#: since :func:`token` never emits a NUL byte for a valid symbol).
LOST_TOKEN = "%00"


def lost_subject(client_id: str) -> str:
    """Where a client publishes a ``lost`` marker (a spool record it cannot send)."""
    return f"{TICKS_ROOT}.{token(client_id)}.{LOST_TOKEN}"


def signals_subject(client_id: str) -> str:
    return f"{SIGNALS_ROOT}.{token(client_id)}"


def outcomes_subject(client_id: str) -> str:
    return f"{OUTCOMES_ROOT}.{token(client_id)}"


@dataclass(frozen=True, slots=True)
class BlockKey:
    """Which block of which link message a NATS message is: the exactly-once key."""

    client_id: str
    session: str
    seq: int
    idx: int

    @property
    def msg_id(self) -> str:
        return f"{self.client_id}/{self.session}/{self.seq}/{self.idx}"

    def headers(self, blocks: int) -> dict[str, str]:
        """The headers to publish this block with (``blocks``: blocks in its message)."""
        return {
            MSG_ID: self.msg_id,
            H_CLIENT: self.client_id,
            H_SESSION: self.session,
            H_SEQ: str(self.seq),
            H_IDX: str(self.idx),
            H_BLOCKS: str(blocks),
        }

    @classmethod
    def from_headers(cls, headers: dict[str, str] | None) -> BlockKey:
        """The key a consumer reads back; ``ValueError`` names what is missing or wrong."""
        if not headers:
            raise ValueError("message without headers: not from a trading client")
        try:
            return cls(
                headers[H_CLIENT], headers[H_SESSION], int(headers[H_SEQ]), int(headers[H_IDX])
            )
        except KeyError as exc:
            raise ValueError(f"message without the {exc.args[0]} header") from None
        except ValueError:
            raise ValueError("message with a non-numeric sequence header") from None


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """The tick stream as settings describe it; created or checked at start.

    ``duplicate_window_s`` must cover the longest reconnect (a resend after it may be
    stored twice in the stream — the consumer still stores it once); ``max_age_s`` and
    ``max_bytes`` bound retention (0: unlimited), i.e. how far back a late consumer can
    replay.
    """

    name: str = "TICKS"
    replicas: int = 1
    duplicate_window_s: float = 600.0
    max_age_s: float = 7 * 24 * 3600.0
    max_bytes: int = 0
    subjects: tuple[str, ...] = (f"{TICKS_ROOT}.>",)


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One NATS message to publish: where, what, and the headers that make it exactly-once."""

    subject: str
    payload: bytes
    headers: dict[str, str]


def tick_messages(
    client_id: str, session: str, seq: int, batches: Sequence[TickBatch]
) -> list[OutMessage]:
    """Link message ``seq`` as NATS messages: one per block, each a v2 ``ticks`` frame of
    that single block (what a consumer decodes with :func:`app.protocol.codec.decode_client`)."""
    return [
        OutMessage(
            ticks_subject(client_id, batch.symbol),
            codec.encode_ticks(seq, [batch]),
            BlockKey(client_id, session, seq, idx).headers(len(batches)),
        )
        for idx, batch in enumerate(batches)
    ]


def lost_message(client_id: str, session: str, seq: int, ticks: int, reason: str) -> OutMessage:
    """Link message ``seq`` that cannot be sent (damaged spool record), as one NATS message:
    consumers count it, as the bridge counts a ``lost`` frame."""
    return OutMessage(
        lost_subject(client_id),
        codec.encode(codec.Lost(seq, ticks, reason[: codec.MAX_TEXT])),
        BlockKey(client_id, session, seq, 0).headers(1),
    )
