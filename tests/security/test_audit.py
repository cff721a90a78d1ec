"""Audit log: JSON lines, UTC times, private file, size rotation, never a secret."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app.security.audit import ACTIONS, AuditLog, default_audit_path
from app.security.redact import REGISTRY, register_secret
from app.security.secret import Secret


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_record_is_one_json_line_with_utc_time(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    local = timezone(timedelta(hours=3))
    audit = AuditLog(path, clock=lambda: datetime(2024, 5, 1, 15, 30, tzinfo=local))
    audit.record("credential.write", "mt5/Demo", "success", backend="file", attempt=2)
    audit.record("login", "gateway/alice", "failure", reason="HTTP 401")
    first, second = _lines(path)
    assert first == {
        "time": "2024-05-01T12:30:00.000+00:00",
        "action": "credential.write",
        "subject": "mt5/Demo",
        "outcome": "success",
        "pid": os.getpid(),
        "backend": "file",
        "attempt": 2,
    }
    assert second["reason"] == "HTTP 401"
    assert datetime.fromisoformat(str(second["time"])).utcoffset() == timedelta(0)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_file_and_folder_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "audit.jsonl"
    AuditLog(path).record("config.change", "pool.size", "success", old=5, new=3)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_secret_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    with pytest.raises(TypeError, match="Secret"):
        audit.record("login", "gateway/alice", "success", password=Secret("Hunter2-xyz"))
    with pytest.raises(TypeError, match="Secret"):
        audit.record("login", "gateway/alice", "success", extra={"nested": [Secret("abcd")]})
    with pytest.raises(TypeError, match="Secret"):
        audit.record("login", "gateway/alice", "success", note=Secret("abcd"))
    assert not path.exists()


def test_unknown_action_or_outcome_is_a_bug(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record("credential.reed", "mt5/x", "success")
    with pytest.raises(ValueError, match="unknown audit outcome"):
        audit.record("credential.read", "mt5/x", "ok")
    with pytest.raises(ValueError, match="clash"):
        audit.record("credential.read", "mt5/x", "success", time="now")
    assert {"credential.read", "credential.write", "credential.delete", "login"} <= ACTIONS
    assert {"config.change", "tls.pin_failure"} <= ACTIONS


def test_secret_values_in_details_never_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    registered = "Registered-Secret-0451"
    register_secret(registered)
    try:
        AuditLog(path).record(
            "login",
            "gateway/alice",
            "failure",
            reason=f"gateway said: bad password {registered}",
            password="Unregistered-Pw-1",
            headers={"Authorization": "Bearer tok-abc-123", "X-Trace": "t1"},
            request='{"username": "alice", "password": "Json-Pw-2"}',
        )
    finally:
        REGISTRY.discard(registered)
    raw = path.read_bytes()
    for leaked in (registered, "Unregistered-Pw-1", "tok-abc-123", "Json-Pw-2"):
        assert leaked.encode() not in raw
    (entry,) = _lines(path)
    assert entry["reason"] == "gateway said: bad password ***"
    assert entry["password"] == "***"
    assert entry["headers"] == {"Authorization": "***", "X-Trace": "t1"}


def test_rotation_keeps_the_newest_records_in_order(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, max_bytes=600, backups=3, fsync=False)
    for seq in range(60):
        audit.record("credential.read", f"mt5/T{seq}", "success", seq=seq)
    files = [path.with_name(f"audit.jsonl.{i}") for i in (3, 2, 1)] + [path]
    assert all(f.exists() for f in files)
    assert not path.with_name("audit.jsonl.4").exists()
    for f in files:
        assert f.stat().st_size <= 600
    kept = [entry["seq"] for f in files for entry in _lines(f)]
    assert kept == list(range(60 - len(kept), 60))  # the oldest went, nothing in between
    assert len(kept) < 60


def test_rotation_without_backups_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, max_bytes=400, backups=0, fsync=False)
    for seq in range(20):
        audit.record("credential.read", "mt5/T", "success", seq=seq)
    assert [p.name for p in tmp_path.iterdir()] == ["audit.jsonl"]
    assert _lines(path)[-1]["seq"] == 19


def test_threads_never_interleave_or_lose_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, max_bytes=20_000, backups=50, fsync=False)
    threads = [
        threading.Thread(
            target=lambda t=t: [
                audit.record("credential.read", f"mt5/T{t}", "success", n=n) for n in range(100)
            ]
        )
        for t in range(8)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    entries = [e for f in tmp_path.iterdir() for e in _lines(f)]  # every line parses
    assert len(entries) == 800
    assert len({(e["subject"], e["n"]) for e in entries}) == 800
    assert len(list(tmp_path.iterdir())) > 2  # it did rotate while the threads wrote


def test_write_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    AuditLog(blocker / "audit.jsonl").record("credential.read", "mt5/x", "success")
    assert "cannot write the audit log" in caplog.text


def test_tls_hook_records_a_pin_failure(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    hook = AuditLog(path).tls_pin_failure_hook()
    hook("gateway.example:443", "sha256/AAA", "sha256/BBB")
    (entry,) = _lines(path)
    assert entry["action"] == "tls.pin_failure"
    assert entry["subject"] == "gateway.example:443"
    assert (entry["outcome"], entry["expected"], entry["actual"]) == (
        "failure",
        "sha256/AAA",
        "sha256/BBB",
    )


@pytest.mark.skipif(sys.platform != "linux", reason="XDG layout")
def test_default_location_is_the_user_log_folder(temp_home: Path) -> None:
    assert default_audit_path() == temp_home / "state" / "trading-client" / "log" / "audit.jsonl"
    assert AuditLog().path == default_audit_path()
