"""The bridge tasks' connection loop (app/nats/retry.py) against a real nats-server:
warned once per outage, backing off, resumed on progress, closed when cancelled."""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import pytest
from nats.aio.client import Client

from app.backoff import BackoffPolicy
from app.nats.cluster import LocalCluster
from app.nats.retry import Reconnecting
from tests.conftest import wait_until

FAST = BackoffPolicy(initial=0.01, maximum=0.02)


async def test_one_warning_per_outage_and_the_session_runs_again(
    nats_server: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    link = Reconnecting(tuple(nats_server.urls), "test task", policy=FAST)
    calls: list[Client] = []
    # Per call: fail at once, or progress then fail (a new outage), or stay up.
    script = ["fail", "fail", "fail", "progress", "fail", "fail", "up"]

    async def session(nc: Client) -> None:
        calls.append(nc)
        step = script[len(calls) - 1]
        if step == "progress":
            link.progressed()
        if step != "up":
            raise nats.errors.TimeoutError
        await nc.flush()  # a real round trip on the kept connection
        await asyncio.Event().wait()

    with caplog.at_level(logging.INFO, logger="app.nats.retry"):
        task = asyncio.create_task(link.run(session))
        await wait_until(lambda: len(calls) == len(script), 10, "the session to stay up")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert link.failures == 6  # the progressing call failed too, after its progress
    assert len({id(nc) for nc in calls}) == 1  # one connection, kept while it is open
    assert calls[0].is_closed  # closed when cancelled
    lines = [r.getMessage() for r in caplog.records]
    paused = "test task paused: nats: timeout"
    assert lines == [paused, "test task resumed", paused]


async def test_a_refusal_it_was_told_to_retry_is_retried(nats_server: LocalCluster) -> None:
    link = Reconnecting(tuple(nats_server.urls), "t", retry_on=(LookupError,), policy=FAST)
    seen = 0

    async def session(_: Client) -> None:
        nonlocal seen
        seen += 1
        raise (LookupError if seen < 3 else ValueError)("no")

    with pytest.raises(ValueError, match="no"):  # anything else ends the task
        await asyncio.wait_for(link.run(session), 10)
    assert seen == 3
