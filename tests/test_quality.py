"""Standing rules of the codebase, checked by the real tools on every test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import prestart

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return path


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_lint_is_clean() -> None:
    result = _run(_tool("ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run(_tool("ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def _mypy() -> tuple[str, ...]:
    return (_tool("mypy"), "--strict", "app", "ui", "trading_client")


#: Started at collection (tests/prestart.py): mypy runs alongside the other tests.
PRESTART = {"mypy": _mypy}


@pytest.mark.prestart("mypy")
def test_core_and_window_pass_mypy_strict() -> None:
    result = prestart.result("mypy", _mypy(), cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_never_imports_qt_or_ui() -> None:
    """Both contracts: app/ never imports Qt or ui/; ui/ reads the core only through
    app.session and value types."""
    result = _run(_tool("lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


#: What ui/ may import from app/ (the window contract's comment in pyproject.toml).
WINDOW_ALLOWED = {
    "app.bench",
    "app.config",
    "app.config.nats_schema",
    "app.config.schema",
    "app.config.sessions_schema",
    "app.config.trading_schema",
    "app.history",
    "app.history.chart_history",
    "app.journal",
    "app.paths",
    "app.security",
    "app.security.secret",
    "app.servertime",
    "app.session",
    "app.session_view",
    "app.ticks",
    "app.timeframes",
    "app.trading",
}
#: Packages split between allowed and forbidden modules: their modules are judged one by one.
_SPLIT = ("config", "history", "security")


def test_every_core_module_is_classified_for_the_window() -> None:
    """A new module of app/ is either forbidden to ui/ in the contract or named as one
    of the value types it may read: it never slips through unclassified."""
    import tomllib  # noqa: PLC0415

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    window = next(c for c in contracts["contracts"] if c["source_modules"] == ["ui"])
    forbidden = set(window["forbidden_modules"])
    core = ROOT / "app"
    modules = {
        f"app.{p.stem}"
        for p in core.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    for package in _SPLIT:
        modules |= {f"app.{package}.{p.stem}" for p in (core / package).glob("*.py")}
        modules.discard(f"app.{package}.__init__")
    unclassified = sorted(m for m in modules if m not in forbidden and m not in WINDOW_ALLOWED)
    assert not unclassified, f"add to the window contract or WINDOW_ALLOWED: {unclassified}"
    assert not forbidden & WINDOW_ALLOWED
