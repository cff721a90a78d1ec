"""The reference bridge forwarding what it stores into the tick stream.

Why: a desktop user adds a cluster without touching a client — the bridge keeps storing
in its SQLite file and also publishes every stored block, with the exact message of
:func:`app.nats.subjects.tick_messages` (same client, session, seq, idx → same
``Nats-Msg-Id``), so a client that also publishes directly is de-duplicated by the stream.

Exactly once, durably: ``tick_blocks`` rows only ever get higher rowids, and a link
message's blocks are committed together, so "everything up to rowid R is in the stream"
is one integer. It lives in the same database (``nats_forward``, one row per stream) and
advances only after the publish acks of a whole page arrived — forward after commit,
position after ack. A crash between the acks and the saved position resends at most one
page, which the stream drops by message id. A cluster that is down only delays the
forwarding; the bridge never waits for it.

Not forwarded: ``lost`` markers (the bridge keeps no row for them, only a seq and a count).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
from nats.aio.client import Client

from app.nats.retry import Reconnecting
from app.nats.stream import StreamRefusedError, ensure_stream
from app.nats.subjects import OutMessage, StreamSpec, tick_messages
from app.server.db import connect, transaction
from app.ticks import TICK_DTYPE, TickBatch

log = logging.getLogger(__name__)

SCHEMA = "CREATE TABLE IF NOT EXISTS nats_forward (stream TEXT PRIMARY KEY, last_rowid INTEGER)"


_Row = tuple[int, str, str, int, int, str, bytes]


@dataclass(frozen=True, slots=True)
class Page:
    """What to publish next: whole link messages, and the position once they are acked."""

    messages: list[OutMessage]
    blocks: int
    last_rowid: int


class ForwardLog:
    """The forwarding position in the bridge's database, and the pages after it."""

    def __init__(self, db_path: Path, stream: str, page_rows: int = 500) -> None:
        self._conn = connect(db_path)
        self._conn.execute(SCHEMA)
        # Calls come from worker threads (asyncio.to_thread); a cancelled task's call may
        # still run when the task's cleanup closes: one lock keeps them apart (closing a
        # connection another thread is in crashes the process).
        self._lock = threading.Lock()
        self._stream = stream
        self._page_rows = page_rows

    def position(self) -> int:
        with self._lock:
            return self._position()

    def _position(self) -> int:
        row = self._conn.execute(
            "SELECT last_rowid FROM nats_forward WHERE stream = ?", (self._stream,)
        ).fetchone()
        return int(row[0]) if row else 0

    def save(self, last_rowid: int) -> None:
        with self._lock, transaction(self._conn):
            self._conn.execute(
                "INSERT INTO nats_forward VALUES (?, ?) ON CONFLICT (stream) DO UPDATE "
                "SET last_rowid = MAX(last_rowid, excluded.last_rowid)",
                (self._stream, last_rowid),
            )

    def next_page(self, after: int) -> Page | None:
        """Whole link messages of the rows after ``after`` (a message cut by the page
        limit is completed, so ``H_BLOCKS`` and the block order are those of the link)."""
        with self._lock:
            return self._next_page(after)

    def _next_page(self, after: int) -> Page | None:
        try:
            rows: list[_Row] = self._conn.execute(
                "SELECT rowid, client_id, session, seq, idx, symbol, ticks FROM tick_blocks "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (after, self._page_rows),
            ).fetchall()
        except sqlite3.OperationalError:  # no tick table yet
            return None
        if not rows:
            return None
        messages: list[OutMessage] = []
        blocks = 0
        last = after
        groups = [list(g) for _, g in groupby(rows, key=lambda r: (r[1], r[2], r[3]))]
        for i, cut in enumerate(groups):
            group = cut
            if cut[0][4] != 0 or i == len(groups) - 1:
                _, client, session, seq = cut[0][:4]
                group = self._conn.execute(
                    "SELECT rowid, client_id, session, seq, idx, symbol, ticks FROM tick_blocks "
                    "WHERE client_id = ? AND session = ? AND seq = ? ORDER BY idx",
                    (client, session, seq),
                ).fetchall()
            batches = [TickBatch(r[5], np.frombuffer(r[6], dtype=TICK_DTYPE)) for r in group]
            messages.extend(tick_messages(group[0][1], group[0][2], group[0][3], batches))
            blocks += len(group)
            last = max(last, *(int(r[0]) for r in group))
        return Page(messages, blocks, last)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class Forwarder:
    """Publishes every stored block to the stream, from the durable position on."""

    def __init__(
        self,
        db_path: Path,
        servers: tuple[str, ...],
        *,
        spec: StreamSpec | None = None,
        poll_s: float = 0.2,
        page_rows: int = 500,
    ) -> None:
        self.db_path = db_path
        self.servers = servers
        self.spec = spec or StreamSpec()
        self._poll = poll_s
        self._page_rows = page_rows
        # A stream that cannot match the spec is retried too: the bridge keeps storing,
        # and forwarding resumes once the stream is fixed.
        self._link = Reconnecting(servers, "forwarding to NATS", retry_on=(StreamRefusedError,))
        #: Blocks whose publish was acked (resends after a restart count again).
        self.forwarded = 0

    async def run(self) -> None:
        """Until cancelled: connect (retrying forever), make sure of the stream, forward."""
        fwd = await asyncio.to_thread(ForwardLog, self.db_path, self.spec.name, self._page_rows)
        try:
            await self._link.run(lambda nc: self._forward(nc, fwd))
        finally:
            await asyncio.to_thread(fwd.close)

    async def _forward(self, nc: Client, fwd: ForwardLog) -> None:
        js = nc.jetstream()
        # Created when missing (subjects and storage checked), its retention left as is.
        done = await ensure_stream(js, self.spec, update=False)
        if done != "ok":
            log.info("NATS stream %s %s", self.spec.name, done)
        position = await asyncio.to_thread(fwd.position)
        while True:
            page = await asyncio.to_thread(fwd.next_page, position)
            if page is None:
                await asyncio.sleep(self._poll)
                continue
            await asyncio.gather(
                *(js.publish(m.subject, m.payload, headers=m.headers) for m in page.messages)
            )
            await asyncio.to_thread(fwd.save, page.last_rowid)  # only once all are acked
            position = page.last_rowid
            self.forwarded += page.blocks
            self._link.progressed()
