"""More ticks within one second (and one millisecond) than any fixed poll count.

The capture asks ``copy_ticks_from`` from whole seconds and cuts away what it already
has; when one second held more ticks than a poll's cap, every answer was the already
captured prefix and the capture stood still for good (the adversarial pass lost 201,000
of 1.2M ticks that way, exit 0). Here a real replay file with 1.2M ticks in one second,
over a million of them in one millisecond, goes through the real pool (worker processes)
and what the collector received is compared with the ticks written to the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.config import ClientConfig
from app.connector.capture import MAX_POLL_COUNT
from app.runtime import Runtime
from app.terminal.constants import TICK_FLAG_ASK, TICK_FLAG_BID
from app.terminal.export_files import write_ticks
from app.ticks import TICK_DTYPE, TickArray
from tests.conftest import wait_until
from tests.connector.test_pool import Recorder

pytestmark = pytest.mark.slow

T0 = 1_700_000_000_000  # a whole second
IN_ONE_MS = MAX_POLL_COUNT + 1  # more than any single poll's new ticks, in one ms
SPREAD = 199_999  # the rest of the second around it


def dense_second() -> TickArray:
    n = IN_ONE_MS + SPREAD
    ticks = np.zeros(n, dtype=TICK_DTYPE)
    before = SPREAD // 2
    tm = np.empty(n, dtype=np.int64)
    tm[:before] = T0 + np.arange(before) * 400 // before  # ms 0..399
    tm[before : before + IN_ONE_MS] = T0 + 500  # all in one millisecond
    tm[before + IN_ONE_MS :] = T0 + 600 + np.arange(n - before - IN_ONE_MS) * 399 // SPREAD
    ticks["time_msc"] = tm
    ticks["time"] = tm // 1000
    step = np.arange(n) % 50_000
    ticks["bid"] = np.round(1.1 + step * 1e-5, 5)
    ticks["ask"] = np.round(ticks["bid"] + 2e-5, 5)
    ticks["flags"] = TICK_FLAG_BID | TICK_FLAG_ASK
    return ticks


async def test_a_million_ticks_in_one_millisecond_never_trap_the_capture(tmp_path: Path) -> None:
    ticks = dense_second()
    path = tmp_path / "EURUSD_dense.csv"
    write_ticks(path, ticks, digits=5)
    config = ClientConfig.model_validate(
        {
            "terminals": [
                {
                    "name": "replay",
                    "kind": "replay",
                    "symbols": ["EURUSD"],
                    "replay_files": {"EURUSD": [str(path)]},
                    "replay_speed": 0,
                }
            ],
            "pool": {"size": 1, "max_batch": 10_000},
            "cache": {"ticks_per_symbol": 2_000_000},
            "backend": {"enabled": False},
            "backfill": {"enabled": False},
        }
    )
    rt = Runtime(config, start_msc=T0 - 1_000)
    rec = Recorder()
    rt.collector.subscribe(rec)
    await rt.start()
    try:
        await wait_until(lambda: rec.count("EURUSD") >= len(ticks), 120, "every tick captured")
    finally:
        await rt.stop()
    got = rec.ticks("EURUSD")
    assert len(got) == len(ticks)  # nothing twice
    # The file is in server time (the replay's default zone, ny-close: GMT+2 on
    # 14 Nov 2023); the capture is UTC.
    utc = ticks.copy()
    utc["time_msc"] -= 2 * 3_600_000
    for field in ("time_msc", "bid", "ask", "flags"):
        assert np.array_equal(got[field], utc[field]), field
