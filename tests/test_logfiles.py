"""The application log file: where it goes, what it records, that secrets never reach it."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import logfiles
from app.logfiles import install_file_log, log_file_path
from app.paths import log_dir
from app.security.redact import FILTER, install_redaction, register_secret
from tests.test_cli import run_cli


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    """The root logger as it was: the test's handlers and levels are taken away again."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {h: h.level for h in handlers}
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler, old in levels.items():
        handler.setLevel(old)
        handler.removeFilter(FILTER)
    root.setLevel(level)


def test_the_file_is_in_the_platform_log_folder() -> None:
    # The autouse fixture points XDG_STATE_HOME at a temporary home.
    assert log_file_path() == log_dir() / "trading-client.log"
    assert log_file_path().is_relative_to(Path(os.environ["XDG_STATE_HOME"]))


def test_secrets_are_redacted_in_the_file(tmp_path: Path, clean_root: logging.Logger) -> None:
    clean_root.setLevel(logging.WARNING)  # as --log-level WARNING leaves it
    path = install_file_log("run", folder=tmp_path)  # the order main() uses:
    install_redaction()  # the filter covers the file handler installed before it
    assert path == tmp_path / "trading-client.log"
    register_secret("Sup3r-s3cret-broker-pw")
    log = logging.getLogger("app.test")
    log.info("login with %s", "Sup3r-s3cret-broker-pw")
    log.warning("request failed: password=hunter2hunter2 token: abc.def.ghi")
    try:
        raise ValueError("bad login Sup3r-s3cret-broker-pw")
    except ValueError:
        log.exception("terminal refused")
    for handler in clean_root.handlers:
        handler.flush()
    text = path.read_text(encoding="utf-8")
    assert "trading-client" in text
    assert "run started" in text
    assert "login with" in text  # INFO reaches the file though the console is at WARNING
    assert "terminal refused" in text
    assert "Traceback" in text
    for secret in ("Sup3r-s3cret-broker-pw", "hunter2hunter2", "abc.def.ghi"):
        assert secret not in text, secret


def test_the_console_keeps_its_level(tmp_path: Path, clean_root: logging.Logger) -> None:
    console = logging.StreamHandler()
    clean_root.addHandler(console)
    clean_root.setLevel(logging.WARNING)
    install_file_log("gui", folder=tmp_path)
    assert console.level == logging.WARNING
    assert clean_root.level == logging.INFO


def test_the_file_rotates(
    tmp_path: Path, clean_root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logfiles, "MAX_BYTES", 2_000)
    install_file_log("run", folder=tmp_path)
    log = logging.getLogger("app.test")
    for i in range(500):
        log.info("line %d %s", i, "x" * 40)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "trading-client.log.1" in names
    assert len(names) == logfiles.BACKUP_COUNT + 1
    assert all(p.stat().st_size <= 2_200 for p in tmp_path.iterdir())


def test_an_unwritable_folder_is_a_warning_not_a_failure(
    tmp_path: Path, clean_root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert install_file_log("run", folder=blocker) is None
    assert "warning: no log file" in capsys.readouterr().err


@pytest.mark.slow
def test_run_writes_the_log_file_not_the_console(tmp_path: Path) -> None:
    config = tmp_path / "client-config.json"
    config.write_text(json.dumps({"pool": {"size": 1}, "backend": {"enabled": False}}))
    result = run_cli("run", "--duration", "2", "--quiet", "--config", str(config))
    assert result.returncode == 0, result.stderr
    text = log_file_path().read_text(encoding="utf-8")
    assert "run started" in text
    assert "streaming" in text  # the pool's INFO line
    assert " INFO " not in result.stderr  # the console stays at --log-level WARNING


def test_commands_other_than_run_and_gui_write_no_log_file() -> None:
    result = run_cli("config", "path", timeout=60)
    assert result.returncode == 0
    assert not log_file_path().exists()
