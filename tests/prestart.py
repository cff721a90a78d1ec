"""Expensive, independent commands started as soon as the session's tests are known.

Why: building the PyInstaller bundle (~40 s on CI) and ``mypy --strict`` (~15 s) need
nothing from the other tests and mostly wait on one core, while pytest runs its tests
on the other one at a time. Started at collection (``tests/conftest.py``, only for the
tests selected) at a lower priority, they run alongside the rest of the suite, and the
test that needs one waits for its result — the same command and the same assertions as
when it ran inline. Run alone, a test starts its command itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Done", "prestart", "result", "stop_all"]

#: Lower priority than the tests, so that timing-sensitive ones are not starved.
NICE = 10


@dataclass(frozen=True, slots=True)
class Done:
    """What a finished command left: its exit code, its output, how long it ran."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class _Running:
    cmd: tuple[str, ...]
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None


_RUNNING: dict[str, _Running] = {}


def _lower_priority() -> None:
    with contextlib.suppress(OSError):
        os.nice(NICE)


def prestart(
    name: str, cmd: tuple[str, ...], *, cwd: Path, env: dict[str, str] | None = None
) -> None:
    """Start ``cmd`` under ``name`` unless it already runs (output to temporary files:
    a pipe nobody reads would block it)."""
    if name in _RUNNING:
        return
    folder = Path(tempfile.mkdtemp(prefix=f"prestart-{name}-"))
    out, err = folder / "stdout", folder / "stderr"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=o,
            stderr=e,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its whole group is ended by stop_all
            preexec_fn=_lower_priority if os.name == "posix" else None,  # noqa: PLW1509
        )
    _RUNNING[name] = _Running(cmd, proc, out, err)


def result(
    name: str, cmd: tuple[str, ...], *, cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> Done:
    """The result of ``cmd``: awaited when it was prestarted, else run now. A command
    started under ``name`` with other arguments is a bug in the caller."""
    prestart(name, cmd, cwd=cwd, env=env)
    run = _RUNNING[name]
    assert run.cmd == cmd, f"prestarted {name} ran {run.cmd}, not {cmd}"
    try:
        run.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill(run)
        raise
    if run.ended is None:
        run.ended = time.monotonic()
    return Done(
        run.proc.returncode,
        run.out.read_text(errors="replace"),
        run.err.read_text(errors="replace"),
        run.ended - run.started,
    )


def _kill(run: _Running) -> None:
    if run.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait()


def stop_all() -> None:
    """End whatever is still running (a session cut short, a test deselected late) and
    remove the output files."""
    for run in _RUNNING.values():
        _kill(run)
        for path in (run.out, run.err):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run.out.parent.rmdir()
    _RUNNING.clear()
