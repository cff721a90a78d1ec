"""``run --source replay:...`` and ``export`` as a user runs them: real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.ports import free_ports
from app.server.store import TickStore
from app.terminal.export_files import rates_from_ticks, read_bars, read_ticks, write_ticks
from app.ticks import TickArray
from tests.export.helpers import dukascopy_ticks, market_ticks
from tests.server.conftest import messages
from tests.test_cli import _start_backend, _stop, run_cli, run_clis, vault_login


def _config(tmp_path: Path, ports: list[int]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "backend": {
                    "bridge_url": f"ws://127.0.0.1:{ports[0]}/ws",
                    "gateway_url": f"http://127.0.0.1:{ports[1]}",
                    "hub_url": f"http://127.0.0.1:{ports[2]}",
                    "client_id": "replay-desk",
                    "embedded": "never",
                    "gateway_username": "replay-user",
                    "spool_dir": str(tmp_path / "spool"),
                },
                "backfill": {"state_file": str(tmp_path / "spans.json")},
                "security": {"vault": "file", "vault_file": str(tmp_path / "vault.bin")},
            }
        )
    )
    return path


def _shifted(ticks: TickArray, by_ms: int) -> TickArray:
    out = ticks.copy()
    out["time_msc"] += by_ms
    out["time"] = out["time_msc"] // 1000
    return out


@pytest.mark.slow
def test_run_replays_files_to_the_backend_and_export_reads_them_back(tmp_path: Path) -> None:
    eurusd = dukascopy_ticks()
    sber = market_ticks("SBER", seconds=600, rate=50.0)
    files: dict[str, tuple[Path, TickArray]] = {
        "EURUSD": (tmp_path / "EURUSD_201901012202_201901072259.csv", eurusd),
        "SBER": (tmp_path / "SBER_2023.csv", sber),
    }
    write_ticks(files["EURUSD"][0], eurusd, digits=5, encoding="utf-16")  # as MT5 writes
    write_ticks(files["SBER"][0], sber, digits=2)
    ports = free_ports(3)
    db = tmp_path / "bridge.sqlite"
    env = vault_login(tmp_path, db, "replay-user", "replay-desk")
    backend = _start_backend(ports, db)
    try:
        source = "replay:" + ",".join(str(p) for p, _ in files.values())
        result = run_cli(
            "run",
            "--config",
            str(_config(tmp_path, ports)),
            "--source",
            source,
            "--duration",
            "90",
            timeout=150,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert f"captured {len(eurusd) + len(sber):,} ticks" in result.stdout, result.stdout
        assert "0 unacknowledged" in result.stdout
    finally:
        _stop(backend)
    # UTC inside (docs/time.md): the files are in the server time of a ny-close broker,
    # GMT+2 on both dates (January 2019, 14 November 2023); the backend stores UTC.
    utc = {symbol: _shifted(ticks, -2 * 3_600_000) for symbol, (_, ticks) in files.items()}
    store = TickStore(db)
    try:
        for symbol in files:
            stored = store.read_ticks(client_id="replay-desk", symbol=symbol)
            assert np.array_equal(stored, utc[symbol]), f"{symbol}: stored != file in UTC"
    finally:
        store.close()

    # export from the backend's database: ticks back to the same MT5 file contents, and
    # a time range of bars, M5 and D1 (D1 without the <TIME> column), the range and the
    # bars in server time (the three exports are independent: started together).
    out = tmp_path / "out" / "EURUSD_ticks.csv"
    out.parent.mkdir()
    ticks_export = ["export", "ticks", "--symbol", "EURUSD", "--db", str(db), "--digits", "5"]
    span = ("--from", "2023-11-14T20:15:00", "--to", "2023-11-14T20:20:00.5")
    bars = {tf: tmp_path / "out" / f"SBER_{tf}.csv" for tf in ("M5", "D1")}
    bars_export = ["export", "bars", "--symbol", "SBER", "--db", str(db), *span]
    results = run_clis(
        [*ticks_export, "--utf16", "--out", str(out)],
        *([*bars_export, "--timeframe", tf, "--out", str(path)] for tf, path in bars.items()),
    )
    for result in results:
        assert result.returncode == 0, result.stderr
    assert f"wrote {len(eurusd):,} ticks of EURUSD" in results[0].stdout
    # Exports are in server time, like MT5's (docs/time.md): the input file again.
    assert out.read_bytes() == files["EURUSD"][0].read_bytes()
    lo = int(np.datetime64("2023-11-14T20:15:00", "ms").astype(np.int64))
    hi = int(np.datetime64("2023-11-14T20:20:00.500", "ms").astype(np.int64))
    tm = sber["time_msc"]
    for tf, ms in (("M5", 300_000), ("D1", 86_400_000)):
        expected = rates_from_ticks(sber[(tm >= lo) & (tm < hi)], ms, 0.01)
        got = read_bars(bars[tf])
        assert got.report.has_time is (tf != "D1")
        assert np.array_equal(got.data, expected)


def test_export_from_files_to_csv_and_mt5(tmp_path: Path) -> None:
    ticks = market_ticks("EURUSD", seconds=30, rate=50.0)
    src = tmp_path / "EURUSD_src.csv"
    write_ticks(src, ticks, encoding="utf-16")
    out, csv_out = tmp_path / "copy.csv", tmp_path / "plain.csv"
    export = ["export", "ticks", "--symbol", "EURUSD", "--input", str(src)]
    mt5, csv = run_clis(
        [*export, "--out", str(out)], [*export, "--format", "csv", "--out", str(csv_out)]
    )
    assert mt5.returncode == 0, mt5.stderr
    assert np.array_equal(read_ticks(out).data, ticks)
    assert csv.returncode == 0, csv.stderr
    lines = csv_out.read_text().splitlines()
    assert lines[0] == "datetime,time_msc,bid,ask,last,volume,volume_real,flags"
    assert len(lines) == len(ticks) + 1
    assert lines[1].split(",")[1] == str(ticks["time_msc"][0])


def test_export_errors_are_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>\n2024.01.02\tx\t1\t1\t\t\t6\n"
    )
    export = ["export", "ticks", "--symbol", "X", "--input", str(bad)]
    row, since, replay = run_clis(
        [*export, "--out", str(tmp_path / "o.csv")],
        [*export, "--from", "yesterday", "--out", str(tmp_path / "o2.csv")],
        ["run", "--source", "replay:" + str(tmp_path / "nope.csv"), "--duration", "1"],
    )
    assert row.returncode == 2
    assert row.stderr.strip() == f"error: {bad}:2: <TIME> 'x' is not a time HH:MM:SS.mmm"
    assert since.returncode == 2
    assert "is not a time" in since.stderr
    assert replay.returncode == 2
    assert "does not exist" in replay.stderr


def test_export_refuses_what_would_give_nothing_and_creates_no_database(
    tmp_path: Path,
) -> None:
    """A mistyped --db, an unknown symbol, --from after --to: one line and exit 2 (they
    used to write 0 rows and exit 0, and the mistyped --db was created empty)."""
    out = tmp_path / "o.csv"
    nope = tmp_path / "nope.sqlite"
    db = tmp_path / "ticks.sqlite"
    with TickStore(db) as store:
        store.store("c", "s", list(enumerate(messages(2), start=1)))
    held = sorted({b.symbol for m in messages(2) for b in m})
    span = ("--from", "2024-01-03", "--to", "2024-01-02")
    # Three refusals, independent of each other: started together.
    no_db, no_symbol, empty = run_clis(
        ["export", "ticks", "--symbol", "EURUSD", "--db", str(nope), "--out", str(out)],
        ["export", "ticks", "--symbol", "FOOBAR", "--db", str(db), "--out", str(out)],
        ["export", "ticks", "--symbol", held[0], "--db", str(db), *span, "--out", str(out)],
    )
    assert no_db.returncode == 2
    assert no_db.stderr.strip().splitlines()[-1] == (
        f"error: --db {nope}: no such database file (the backend's SQLite file)"
    )
    assert not nope.exists()
    assert no_symbol.returncode == 2
    assert no_symbol.stderr.strip().splitlines()[-1] == (
        f"error: --db {db} has no ticks of FOOBAR (it holds: {', '.join(held)})"
    )
    assert empty.returncode == 2
    assert empty.stderr.strip().splitlines()[-1] == (
        "error: --from 2024-01-03 is not before --to 2024-01-02: the span is empty"
    )
    assert not out.exists()
    # The database is still good for a real export.
    result = run_cli("export", "ticks", "--symbol", held[0], "--db", str(db), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 1 + sum(
        len(b.ticks) for m in messages(2) for b in m if b.symbol == held[0]
    )
