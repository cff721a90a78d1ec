"""``trading-client backend users``: passwords only from stdin or a hidden prompt, one
clear line for every mistake, and the start-up hint when there are no users."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.server.users import UserStore, users_path, verify_password
from app.server.users_cli import users_hint

CLI = [sys.executable, "-m", "app.server.cli", "backend", "users"]


def users(db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--db", str(db), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_add_list_passwd_remove(tmp_path: Path) -> None:
    db = tmp_path / "b.sqlite"
    assert users_hint(db) is not None
    assert "backend users add" in (users_hint(db) or "")
    added = users(db, "add", "ann", "--client", "desk-1", "--client", "desk-2", stdin="pw-1\n")
    assert added.returncode == 0, added.stderr
    assert users_hint(db) is None
    listed = users(db, "list")
    assert listed.stdout.strip() == "ann\tdesk-1, desk-2"
    again = users(db, "add", "ann", "--client", "desk-1", stdin="pw-2\n")
    assert again.returncode == 1
    assert again.stderr.strip() == "error: user 'ann' exists already"
    assert users(db, "passwd", "ann", stdin="pw-3\n").returncode == 0
    user = UserStore(users_path(db)).get("ann")
    assert user is not None
    assert verify_password("pw-3", user.password_hash)
    assert users(db, "remove", "ann").returncode == 0
    gone = users(db, "remove", "ann")
    assert gone.returncode == 1
    assert gone.stderr.strip() == "error: no user 'ann'"
    assert "pw-" not in users_path(db).read_text()


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "b.sqlite"
    for args, stdin in (
        (("add", "a:b", "--client", "x"), "pw\n"),
        (("add", "@embedded", "--client", "x"), "pw\n"),
        (("add", "bob"), "pw\n"),  # no client id and not admin
        (("add", "bob", "--client", "x"), "\n"),  # empty password
    ):
        done = users(db, *args, stdin=stdin)
        assert done.returncode == 1, (args, done.stdout)
        assert done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr
    users_path(db).write_text("{not json")
    broken = users(db, "list")
    assert broken.returncode == 1
    assert broken.stderr.startswith("error: ")
