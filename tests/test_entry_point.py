"""The ``trading-client`` entry point imports nothing until it runs.

Why it matters: workers are started with ``spawn``, and each spawned child runs the
parent's main script again before its own work — for the console script, ``from
trading_client import main``. While that imported ``app.cli`` (every command's modules:
backend, NATS, export…) each of the five workers and the history helper spent seconds
on it before capturing a tick (the cold start's largest share on two cores).

Truth: ``sys.modules`` of a fresh interpreter, and the real console script run the way
spawn runs it (``runpy.run_path`` as ``__mp_main__``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

HEAVY = ("app", "ui", "PySide6", "numpy", "aiohttp", "nats", "httpx", "pydantic")


def _imported_after(code: str) -> list[str]:
    probe = (
        f"import sys\n{code}\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return list(ast.literal_eval(done.stdout.strip()))


def test_importing_the_package_imports_nothing_heavy() -> None:
    assert _imported_after("import trading_client") == []


def test_a_spawned_child_of_the_console_script_imports_nothing_heavy() -> None:
    script = Path(sys.executable).parent / "trading-client"
    assert script.is_file(), "the console script (pip install -e .)"
    code = f"import runpy; runpy.run_path({str(script)!r}, run_name='__mp_main__')"
    assert _imported_after(code) == []
