"""Kill -9 at the worst moment, then compare what the bridge stored with the terminal.

The app (``trading-client run``), the reference backend and the workers are real
processes; the independent truth is the simulated terminal's deterministic history
(``Market``), never the app's own counters. Over the whole span captured by both runs,
per symbol: every tick stored, none twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest

from app.ports import free_ports
from app.server.store import TickStore
from app.terminal.market import DEFAULT_PROFILES, Market
from app.ticks import TICK_DTYPE, TickArray
from tests.conftest import wait_until_sync as wait_until
from tests.server.conftest import add_user

pytestmark = pytest.mark.slow

CLI = (sys.executable, "-m", "app")
RATES = {"EURUSD": 2_000.0, "GBPUSD": 1_500.0, "XAUUSD": 1_500.0}  # 5,000 ticks/s
SEED = 23
CLIENT = "crash-desk"
USER, PASSWORD = "crash-user", "crash-password-1"
MASTER = "crash-master-pass"


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The backend's password in a file vault, stored by ``credentials set`` as a user
    would; made once (a process and a key derivation) and copied into each test."""
    path = tmp_path_factory.mktemp("vault") / "vault.bin"
    stored = subprocess.run(
        [*CLI, "credentials", "--vault-file", str(path), "--no-keyring", "set", f"gateway/{USER}"],
        input=PASSWORD + "\n",
        env={**os.environ, "TRADING_CLIENT_MASTER_PASSWORD": MASTER},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stored.returncode == 0, stored.stderr
    return path


class Setup:
    def __init__(self, tmp_path: Path, vault: Path) -> None:
        self.tmp = tmp_path
        self.bridge, self.gateway, self.hub = free_ports(3)
        self.db = tmp_path / "backend.sqlite"
        self.spool = tmp_path / "spool"
        self.config = tmp_path / "config.json"
        self.vault = tmp_path / "vault.bin"
        self.env = {**os.environ, "TRADING_CLIENT_MASTER_PASSWORD": MASTER}
        self.config.write_text(
            json.dumps(
                {
                    "terminals": [
                        {
                            "symbols": list(RATES),
                            "rates": RATES,
                            "seed": SEED,
                            "market_hours": "always",
                        }
                    ],
                    "pool": {"size": 3, "backoff": {"initial_s": 0.2, "maximum_s": 1.0}},
                    "backend": {
                        "bridge_url": f"ws://127.0.0.1:{self.bridge}/ws",
                        "gateway_url": f"http://127.0.0.1:{self.gateway}",
                        "hub_url": f"http://127.0.0.1:{self.hub}",
                        "client_id": CLIENT,
                        "embedded": "never",
                        "gateway_username": USER,
                        "spool_dir": str(self.spool),
                        "backoff": {"initial_s": 0.1, "maximum_s": 0.5},
                    },
                    "backfill": {"state_file": str(tmp_path / "spans.json"), "save_interval_s": 1},
                    "monitor": {"enabled": False},
                    "security": {"vault": "file", "vault_file": str(self.vault)},
                }
            )
        )
        # The backend's user, and its password in the app's vault (made once per module
        # by the real command, see ``vault``): the path of an app that talks to a backend
        # it does not start.
        add_user(self.db, USER, PASSWORD, [CLIENT])
        shutil.copyfile(vault, self.vault)

    def backend(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [
                *CLI,
                "backend",
                "--bridge-port",
                str(self.bridge),
                "--gateway-port",
                str(self.gateway),
                "--hub-port",
                str(self.hub),
                "--db",
                str(self.db),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the URLs, once it listens
        assert "ws://" in line, proc.stderr.read() if proc.stderr else line
        return proc

    def app(self, duration: float) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CLI, "run", "--config", str(self.config), "--duration", str(duration)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def spooled_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.spool.rglob("seg-*.spool"))

    def newest_msc(self) -> int:
        """Over the symbols, the oldest of each one's newest stored tick (0 while one has
        none): every symbol's capture has been delivered up to that time."""
        if not self.db.exists():
            return 0
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute(
                "SELECT symbol, ticks FROM tick_blocks WHERE rowid IN "
                "(SELECT MAX(rowid) FROM tick_blocks WHERE client_id = ? GROUP BY symbol)",
                (CLIENT,),
            ).fetchall()
        except sqlite3.OperationalError:  # no table yet
            return 0
        finally:
            conn.close()
        newest = {sym: int(np.frombuffer(t, dtype=TICK_DTYPE)["time_msc"].max()) for sym, t in rows}
        return min(newest.get(sym, 0) for sym in RATES)

    def delivered_since(self, since_ms: int) -> Callable[[], bool]:
        """True once, for every symbol, a tick captured after ``since_ms`` is stored and
        the stored span is whole. Live ticks are stored in capture order, but the history
        of a gap (the backfill of a restarted run) is fetched beside them: a newer tick
        stored says nothing about the gap, and a run stopped on that alone left its
        backfill unfinished under load ('XAUUSD: 7304 ticks missing')."""
        return lambda: self.newest_msc() > since_ms and span_stored_once(self.db)

    def stored_ticks(self) -> int:
        if not self.db.exists():
            return 0
        with TickStore(self.db) as store:
            return int(store.stats()["ticks_stored"])


def now_ms() -> int:
    return int(time.time() * 1000)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"process {proc.pid} ignored signal {sig} for {timeout} s") from None


def in_order(parts: TickArray) -> TickArray:
    return parts[np.argsort(parts["time_msc"], kind="stable")]


def assert_whole_span_stored_once(db: Path) -> int:
    """Per symbol: the stored ticks of every session are the terminal's history from the
    first stored tick to the last, each exactly once."""
    market = Market(SEED, DEFAULT_PROFILES, RATES)
    total = 0
    with TickStore(db) as store:
        for sym in RATES:
            got = in_order(store.read_ticks(client_id=CLIENT, symbol=sym))
            assert len(got) > 0, f"nothing stored for {sym}"
            first, last = int(got["time_msc"][0]), int(got["time_msc"][-1])
            expected = market.ticks_range(sym, first, last + 1)
            missing = len(expected) - len(got)
            assert len(got) <= len(expected), f"{sym}: {-missing} ticks stored twice"
            # Only ticks of the very last millisecond may be beyond the capture's end.
            assert np.all(expected["time_msc"][len(got) :] == last), (
                f"{sym}: {missing} ticks missing"
            )
            assert np.array_equal(got, expected[: len(got)]), f"{sym}: stored stream differs"
            total += len(got)
    return total


def test_kill_9_of_the_app_during_a_bridge_outage_loses_and_doubles_nothing(
    tmp_path: Path, vault: Path
) -> None:
    setup = Setup(tmp_path, vault)
    second: subprocess.Popen[str] | None = None
    backend: subprocess.Popen[str] | None = None
    first = setup.app(60)
    try:
        # The bridge is down: ticks go to the spool. Kill the app 2 s into the outage.
        wait_until(lambda: setup.spooled_bytes() > 2 * 60 * 5_000, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        at_kill = setup.spooled_bytes()
        assert at_kill > 0, "the spool did not survive the crash"
        # The next run resumes that spool and backfills the gap while the bridge is
        # still down; about 1 s later the bridge comes back. Once a tick captured after
        # that is stored, the run is stopped: what is left is drained at the stop.
        second = setup.app(120)
        wait_until(lambda: setup.spooled_bytes() > at_kill + 60 * 5_000, timeout=60)
        backend = setup.backend()
        wait_until(setup.delivered_since(now_ms()), 60, "delivery after the outage")
        assert stop(second) == 0, second.stderr.read() if second.stderr else ""
        assert setup.spooled_bytes() == 0, "the spool was not drained"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
        if backend is not None:
            stop(backend)
    stored = assert_whole_span_stored_once(setup.db)
    assert stored > 10_000
    assert not list(setup.spool.rglob("*")) or all(p.is_dir() for p in setup.spool.rglob("*"))


def test_kill_9_of_the_bridge_and_a_worker_at_once_loses_and_doubles_nothing(
    tmp_path: Path, vault: Path
) -> None:
    setup = Setup(tmp_path, vault)
    backend = setup.backend()
    app = setup.app(120)
    try:
        wait_until(lambda: setup.stored_ticks() > 5_000, timeout=60)
        workers = [p for p in psutil.Process(app.pid).children() if "python" in p.name()]
        assert workers, "no worker process found"
        os.kill(workers[0].pid, signal.SIGKILL)
        backend.send_signal(signal.SIGKILL)
        backend.wait(10)
        stored_before = setup.stored_ticks()
        # The bridge stays down for about a second of capture: the spool grows.
        at_kill = setup.spooled_bytes()
        wait_until(lambda: setup.spooled_bytes() > at_kill + 60 * 5_000, timeout=30)
        backend = setup.backend()
        # Every symbol (the killed worker's one too, once restarted) delivered again.
        wait_until(setup.delivered_since(now_ms()), 60, "every symbol delivered again")
        assert stop(app) == 0, app.stderr.read() if app.stderr else ""
    finally:
        if app.poll() is None:
            app.kill()
        stop(backend)
    # Whole and once, and beyond what was stored when both were killed.
    assert assert_whole_span_stored_once(setup.db) > stored_before


def test_sigterm_during_an_outage_ends_at_once_and_the_next_run_delivers_it_all(
    tmp_path: Path, vault: Path
) -> None:
    """Quitting while the bridge is down does not wait for it: the durable spool keeps
    what is unacknowledged, and the next run sends it."""
    setup = Setup(tmp_path, vault)
    backend: subprocess.Popen[str] | None = None
    second: subprocess.Popen[str] | None = None
    first = setup.app(60)
    try:
        wait_until(lambda: setup.spooled_bytes() > 2 * 60 * 5_000, timeout=60)
        started = time.monotonic()
        assert stop(first, timeout=20) == 0
        assert time.monotonic() - started < 10  # the drain timeout, not a minute
        assert first.stderr is not None
        assert "kept in the spool for the next run" in first.stderr.read()
        # The next run and the bridge start together; the run is stopped once a tick
        # captured after both are up is stored (what is left is drained at the stop).
        second = setup.app(120)
        backend = setup.backend()
        wait_until(setup.delivered_since(now_ms()), 60, "delivery by the next run")
        assert stop(second) == 0, second.stderr.read() if second.stderr else ""
        assert setup.spooled_bytes() == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
        if backend is not None:
            stop(backend)
    assert assert_whole_span_stored_once(setup.db) > 10_000


def test_kill_9_during_a_history_backfill_loses_and_doubles_nothing(
    tmp_path: Path, vault: Path
) -> None:
    """An earlier run ended 3 minutes ago: the next run backfills those minutes while the
    bridge is down and is killed meanwhile; the run after it delivers the whole span from
    where the earlier run ended, once."""
    setup = Setup(tmp_path, vault)
    gap_begin = int(time.time() * 1000) - 180_000
    spans = {f"simulated/{sym}": [[gap_begin - 60_000, 0, gap_begin, 0]] for sym in RATES}
    (tmp_path / "spans.json").write_text(json.dumps({"version": 1, "spans": spans}))
    backend: subprocess.Popen[str] | None = None
    second: subprocess.Popen[str] | None = None
    first = setup.app(60)
    try:
        # 3 minutes at 5,000 ticks/s is ~900k history ticks (54 MB): kill once a part of
        # them is in the spool.
        wait_until(lambda: setup.spooled_bytes() > 10 * 2**20, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        backend = setup.backend()
        # The run after it is stopped once the whole span is stored (checked against the
        # terminal's history, each second): no fixed run time to outlast on a slow machine.
        second = setup.app(120)
        wait_until(
            lambda: gap_filled(setup.db, gap_begin) and span_stored_once(setup.db),
            120,
            "the whole span from the earlier run's end",
            interval=1.0,
        )
        assert stop(second) == 0, second.stderr.read() if second.stderr else ""
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
        if backend is not None:
            stop(backend)
    assert gap_filled(setup.db, gap_begin), "the gap is not filled from its start"
    assert assert_whole_span_stored_once(setup.db) > 900_000


def gap_filled(db: Path, gap_begin: int) -> bool:
    """Every symbol's first stored tick is the terminal's first one after ``gap_begin``."""
    market = Market(SEED, DEFAULT_PROFILES, RATES)
    with TickStore(db) as store:
        for sym in RATES:
            got = store.read_ticks(client_id=CLIENT, symbol=sym)
            begin = int(market.ticks_range(sym, gap_begin, gap_begin + 60_000)["time_msc"][0])
            if len(got) == 0 or int(got["time_msc"].min()) != begin:
                return False
    return True


def span_stored_once(db: Path) -> bool:
    try:
        assert_whole_span_stored_once(db)
    except AssertionError:
        return False
    return True
