"""The settings file on disk: first run, saves, backups, rollback, recovery, autosave."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.clock import ManualClock
from app.config import ClientConfig, ConfigError, parse_config
from app.config.store import (
    Autosaver,
    ConfigStore,
    canonical_json,
    config_json,
    default_config_path,
    json_schema_bytes,
    write_json_schema,
)
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
GARBAGE = b'\x00\xff{"pool": \x9c\x80 not json at all \xfe\n'


def sized(n: int) -> ClientConfig:
    """Distinct valid settings, told apart by the pool size (5, the default, is avoided
    by the tests that need a change from the first-run file)."""
    return ClientConfig.model_validate({"pool": {"size": n}})


def on_disk(path: Path) -> ClientConfig:
    return parse_config(path.read_bytes(), str(path))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "settings" / "client-config.json"


# ----------------------------------------------------------------------- first run, save
def test_first_run_writes_the_defaults(path: Path) -> None:
    result = ConfigStore(path).load()
    assert result.config == ClientConfig()
    assert result.warnings == []
    assert result.source == "defaults"
    assert on_disk(path) == ClientConfig()
    assert ConfigStore(path).load().source == "file"


def test_default_location_is_the_per_user_config_folder() -> None:
    # The autouse fixture points XDG_CONFIG_HOME at a temporary home.
    expected = Path(os.environ["XDG_CONFIG_HOME"]) / "trading-client" / "client-config.json"
    assert default_config_path() == expected


def test_saving_the_same_content_writes_nothing(path: Path) -> None:
    store = ConfigStore(path)
    assert store.save(sized(3)) is True
    before = path.stat()
    assert store.save(sized(3)) is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # A hand-formatted file with the same content counts as the same.
    path.write_text(json.dumps(sized(3).model_dump(mode="json"), indent=7))
    before = path.stat()
    assert store.save(sized(3)) is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert store.backups() == []


def test_a_save_keeps_the_replaced_file_as_a_backup(path: Path) -> None:
    clock = ManualClock(start=1_732_440_000.0)
    store = ConfigStore(path, clock=clock)
    store.save(sized(2))
    first_bytes = path.read_bytes()
    clock.advance(1.5)
    assert store.save(sized(3)) is True
    [backup] = store.backups()
    assert backup.valid
    assert backup.path.read_bytes() == first_bytes
    assert backup.path.parent == path.parent / "backups"
    assert backup.path.name == "client-config.20241124T092001.500Z.json"
    assert backup.saved_at == datetime(2024, 11, 24, 9, 20, 1, 500_000, tzinfo=UTC)
    assert on_disk(path) == sized(3)


def test_backups_rotate_to_the_newest_n(path: Path) -> None:
    # A clock that never moves: names must still be unique and in save order.
    store = ConfigStore(path, backups=3, clock=ManualClock())
    for n in range(1, 8):
        store.save(sized(n))
    kept = store.backups()
    assert [on_disk(b.path).pool.size for b in kept] == [6, 5, 4]
    assert len(list(store.backup_dir.iterdir())) == 3
    assert kept[0].saved_at > kept[1].saved_at > kept[2].saved_at


def test_load_prunes_backups_left_over_a_smaller_limit(path: Path) -> None:
    # One too many is what a kill between writing a backup and pruning leaves behind.
    store = ConfigStore(path, backups=5)
    for n in range(1, 7):
        store.save(sized(n))
    assert len(store.backups()) == 5
    smaller = ConfigStore(path, backups=2)
    assert smaller.load().warnings == []
    assert [on_disk(b.path).pool.size for b in smaller.backups()] == [5, 4]


def test_rollback_restores_a_backup_and_backs_up_the_current_one(path: Path) -> None:
    store = ConfigStore(path, backups=5)
    for n in (1, 2, 3):
        store.save(sized(n))
    done = store.rollback(1)  # backups are [2, 1]
    assert done.written
    assert done.config == sized(1)
    assert on_disk(path) == sized(1)
    assert [on_disk(b.path).pool.size for b in store.backups()] == [3, 2, 1]
    # A rollback is undone like any save.
    store.rollback(0)
    assert on_disk(path) == sized(3)
    with pytest.raises(ConfigError, match="there is no backup 9"):
        store.rollback(9)


def test_rollback_refuses_an_invalid_backup(path: Path) -> None:
    store = ConfigStore(path)
    store.save(sized(1))
    store.save(sized(2))
    [backup] = store.backups()
    backup.path.write_text('{"pool": {"size": -1}}')
    assert store.backups()[0].valid is False
    with pytest.raises(ConfigError, match=r"pool\.size: -1 is below the minimum 1"):
        store.rollback(0)
    assert on_disk(path) == sized(2)


# ----------------------------------------------------------------------- recovery
def _with_backups(path: Path, sizes: list[int]) -> ConfigStore:
    store = ConfigStore(path, backups=10)
    for n in sizes:
        store.save(sized(n))
    return store


def _kept_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.bad-*"))


def test_garbage_bytes_start_from_the_newest_valid_backup(path: Path) -> None:
    store = _with_backups(path, [1, 2, 3])  # backups: [2, 1]
    # The newest backup is itself broken: it must be passed over.
    newest = store.backups()[0]
    newest.path.write_bytes(b'{"pool": {"size": 0}}')
    path.write_bytes(GARBAGE)

    result = ConfigStore(path).load()

    assert result.config == sized(1)
    assert result.source == "backup"
    [kept] = _kept_files(path)
    assert kept.read_bytes() == GARBAGE  # byte for byte
    assert result.kept_as == kept
    assert any(w.startswith(f"{path}: not valid JSON") for w in result.warnings), result.warnings
    assert any(kept.name in w for w in result.warnings)
    assert on_disk(path) == sized(1)  # recovered settings saved in its place


def test_invalid_values_name_the_file_and_each_problem(path: Path) -> None:
    _with_backups(path, [4, 5])
    bad = b'{"pool": {"size": 0, "sise": 2}, "cache": {"bar_history": 5}}'
    path.write_bytes(bad)

    result = ConfigStore(path).load()

    assert result.config == sized(4)
    assert f"{path}: pool.size: 0 is below the minimum 1" in result.warnings
    assert f"{path}: pool.sise: unknown setting" in result.warnings
    assert f"{path}: cache.bar_history: 5 is below the minimum 10" in result.warnings
    [kept] = _kept_files(path)
    assert kept.read_bytes() == bad


def test_no_valid_backup_means_defaults(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"[1, 2, 3]")
    result = ConfigStore(path).load()
    assert result.config == ClientConfig()
    assert result.source == "defaults"
    assert f"{path}: the top level must be a JSON object" in result.warnings
    assert any("no valid backup" in w for w in result.warnings)


def test_a_kept_bad_file_is_never_overwritten(path: Path) -> None:
    clock = ManualClock()  # same timestamp for both bad files
    for content in (b"first bad", b"second bad"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        ConfigStore(path, clock=clock).load()
    assert sorted(p.read_bytes() for p in _kept_files(path)) == [b"first bad", b"second bad"]


def test_load_without_repair_changes_nothing_on_disk(path: Path) -> None:
    _with_backups(path, [1, 2])
    path.write_bytes(GARBAGE)
    before = sorted((p, p.read_bytes()) for p in path.parent.rglob("*") if p.is_file())

    result = ConfigStore(path).load(repair=False)

    assert result.config == sized(1)
    assert result.kept_as is None
    assert sorted((p, p.read_bytes()) for p in path.parent.rglob("*") if p.is_file()) == before


def test_an_unreadable_location_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "client-config.json"
    folder.mkdir()  # a folder where the file should be
    with pytest.raises(ConfigError, match="cannot read"):
        ConfigStore(folder).load()
    assert folder.is_dir()


def test_load_removes_only_stale_temp_files(path: Path) -> None:
    store = _with_backups(path, [1])
    stale = path.parent / ".client-config.json.abc123.tmp"
    fresh = path.parent / ".client-config.json.def456.tmp"
    stale_backup = store.backup_dir / ".client-config.20240101T000000.000Z.json.x.tmp"
    store.backup_dir.mkdir(exist_ok=True)
    for tmp in (stale, fresh, stale_backup):
        tmp.write_bytes(b"{half a fi")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(stale_backup, (old, old))

    assert store.load().warnings == []

    assert not stale.exists()
    assert not stale_backup.exists()
    assert fresh.exists()  # may belong to a save running in another process


# ----------------------------------------------------------------------- schema file
def test_the_committed_json_schema_is_the_generated_one() -> None:
    committed = ROOT / "config" / "client-config.schema.json"
    assert committed.read_bytes() == json_schema_bytes(), (
        "regenerate it: python -m app.config.cli schema config/client-config.schema.json"
    )


def test_write_json_schema_writes_parseable_sorted_json(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    write_json_schema(out)
    doc = json.loads(out.read_bytes())
    assert doc["title"] == "ClientConfig"
    assert set(doc["properties"]) == set(ClientConfig.model_fields)
    assert list(doc) == sorted(doc)


def test_the_file_form_round_trips() -> None:
    config = sized(9)
    assert parse_config(config_json(config)) == config
    assert canonical_json(config) == canonical_json(json.loads(config_json(config)))


# ----------------------------------------------------------------------- autosave
class RecordingStore(ConfigStore):
    """Records each save (config, monotonic time); optionally blocks it until released."""

    def __init__(self, path: Path, *, block: bool = False) -> None:
        super().__init__(path)
        self.calls: list[tuple[ClientConfig, float]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not block:
            self.release.set()
        self.fail_next = False

    def save(self, config: ClientConfig, *, expected: ClientConfig | None = None) -> bool:
        self.calls.append((config, time.monotonic()))
        self.started.set()
        assert self.release.wait(30), "test never released the save"
        if self.fail_next:
            self.fail_next = False
            raise ConfigError(f"{self.path}: cannot save: disk full")
        return super().save(config, expected=expected)


async def test_quick_changes_are_saved_once_after_the_quiet_period(path: Path) -> None:
    store = RecordingStore(path)
    store.load()
    saver = Autosaver(store, quiet_period=0.05)
    last_change = 0.0
    for n in range(11, 16):
        last_change = time.monotonic()  # taken before: the quiet period starts after it
        saver.changed(sized(n))
        await asyncio.sleep(0)
    await wait_until(lambda: saver.saves == 1 and saver.idle, timeout=10, what="the autosave")

    assert [c.pool.size for c, _ in store.calls] == [5, 15]  # the first run, then one
    assert store.calls[1][1] - last_change >= 0.05 - 1e-6  # float rounding only
    assert on_disk(path) == sized(15)
    assert len(store.backups()) == 1  # the first-run file, replaced once

    saver.changed(sized(6))  # a later edit is a second save
    await wait_until(lambda: saver.saves == 2 and saver.idle, timeout=10, what="2nd autosave")
    assert on_disk(path) == sized(6)


async def test_flush_saves_at_once(path: Path) -> None:
    store = ConfigStore(path)
    saver = Autosaver(store, quiet_period=3600)
    saver.changed(sized(7))
    assert saver.pending
    assert await saver.flush() is True
    assert on_disk(path) == sized(7)
    assert saver.idle
    assert await saver.flush() is False  # nothing pending


async def test_an_edit_during_a_save_is_saved_after_it(path: Path) -> None:
    store = RecordingStore(path, block=True)
    saver = Autosaver(store, quiet_period=0)
    saver.changed(sized(1))
    await wait_until(store.started.is_set, timeout=10, what="the first save to start")
    saver.changed(sized(2))
    store.release.set()
    await wait_until(lambda: saver.idle and saver.saves == 2, timeout=10, what="both saves")
    assert [c.pool.size for c, _ in store.calls] == [1, 2]
    assert on_disk(path) == sized(2)


async def test_a_cancelled_flush_still_completes_its_save(path: Path) -> None:
    store = RecordingStore(path, block=True)
    saver = Autosaver(store, quiet_period=3600)
    saver.changed(sized(4))
    flushing = asyncio.create_task(saver.flush())
    await wait_until(store.started.is_set, timeout=10, what="the save to start")
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    store.release.set()
    await wait_until(lambda: saver.idle, timeout=10, what="the save to finish")
    assert on_disk(path) == sized(4)
    assert saver.saves == 1
    await saver.aclose()
    assert len(store.calls) == 1  # nothing was saved twice


async def test_a_failed_save_stays_pending_and_is_retried_by_flush(path: Path) -> None:
    store = RecordingStore(path)
    store.fail_next = True
    saver = Autosaver(store, quiet_period=0)
    saver.changed(sized(8))
    await wait_until(lambda: saver.last_error is not None, timeout=10, what="the failure")
    assert "disk full" in (saver.last_error or "")
    assert saver.pending
    assert not path.exists()
    assert await saver.flush() is True
    assert saver.last_error is None
    assert on_disk(path) == sized(8)
