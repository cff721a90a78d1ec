"""The ``trading-client`` executable: the one place where the core meets the window.

``app`` (the core) never imports Qt or ``ui``; ``ui`` renders the core. This package
wires the two: it runs :func:`app.cli.main` with the window's commands, which import
PySide6 only when ``gui`` or ``bench gui`` actually runs, so the headless commands start
without Qt.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from app.cli import WindowCommands
from app.cli import main as cli_main
from app.doctor_xcb import launch_problem


def _gui(config: Path, screenshot: Path | None, quit_after: float | None, theme: str | None) -> int:
    problem = launch_problem()  # before Qt: it aborts the process on a missing library
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    from ui.main import GuiOptions, run_gui  # noqa: PLC0415 - Qt only for this command

    return run_gui(GuiOptions(config, screenshot, quit_after, theme))


def _bench_gui(seconds: float) -> dict[str, object]:
    from ui.bench import run_bench_gui  # noqa: PLC0415 - Qt only for this command

    return run_bench_gui(seconds)


WINDOW = WindowCommands(gui=_gui, bench_gui=_bench_gui)


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(argv, WINDOW)
