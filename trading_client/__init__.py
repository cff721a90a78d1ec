"""The ``trading-client`` executable: the one place where the core meets the window.

``app`` (the core) never imports Qt or ``ui``; ``ui`` renders the core. This package
wires the two: it runs :func:`app.cli.main` with the window's commands, which import
PySide6 only when ``gui`` or ``bench gui`` actually runs, so the headless commands start
without Qt.

Importing this package imports nothing else, on purpose: every worker process is
started with ``spawn``, and a spawned child first runs the parent's main script again —
for the ``trading-client`` console script, ``from trading_client import main``. When
that pulled in ``app.cli`` (every command's modules: the backend, NATS, export…), each
of the five workers and the history helper paid for it before capturing anything,
seconds of the cold start on a two-core machine.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def _gui(config: Path, screenshot: Path | None, quit_after: float | None, theme: str | None) -> int:
    from app.doctor_xcb import launch_problem  # noqa: PLC0415 - see the module doc

    problem = launch_problem()  # before Qt: it aborts the process on a missing library
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    prepare_window_start()
    from ui.main import GuiOptions, run_gui  # noqa: PLC0415 - Qt only for this command

    return run_gui(GuiOptions(config, screenshot, quit_after, theme))


def prepare_window_start() -> None:
    """The window's cold start, before anything else: the workers' fork server is
    started first (it imports the workers' modules in its own process meanwhile:
    app/connector/process_start.py), then the core the window runs on is imported
    before PySide6: once PySide6 is imported, its ``__feature__`` import hook reads the
    source of every module imported after it (``inspect.getsource``), which added a
    fifth to the core's import time on the window's cold start."""
    from app.connector.process_start import warm_worker_start  # noqa: PLC0415

    warm_worker_start()
    import app.session  # noqa: F401, PLC0415 - see the doc


def _bench_gui(seconds: float) -> dict[str, object]:
    prepare_window_start()
    from ui.bench import run_bench_gui  # noqa: PLC0415 - Qt only for this command

    return run_bench_gui(seconds)


def main(argv: Sequence[str] | None = None) -> int:
    from app.cli import WindowCommands  # noqa: PLC0415 - see the module doc
    from app.cli import main as cli_main  # noqa: PLC0415

    return cli_main(argv, WindowCommands(gui=_gui, bench_gui=_bench_gui))
