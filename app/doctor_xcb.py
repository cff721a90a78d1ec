"""``doctor``'s X11 check: the libraries Qt's xcb platform plugin needs, by name.

Why its own check: a missing one aborts the window at start (SIGABRT), and Qt's message
blames ``libxcb-cursor0`` whatever is missing (a new user had ``libxcb-icccm4`` and
``libxcb-keysyms1`` missing, with ``libxcb-cursor0`` installed). The Qt probe cannot
say more, and on a machine without a display it runs the offscreen plugin, which needs
none of them. So the plugin's files (``Qt/plugins/platforms/libqxcb.so`` and
``Qt/lib/libQt6XcbQpa.so*``) are given to ``ldd``, which resolves every linked library as
the loader would (runpath included); each one that is "not found" is named, with the apt
package (from the soname: ``libxcb-icccm.so.4`` → ``libxcb-icccm4``) and the dnf line.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from app.doctor_check import Check, Level

__all__ = [
    "apt_package",
    "check_xcb_libraries",
    "launch_problem",
    "missing_libraries",
    "xcb_plugin_files",
]

#: Sonames whose Debian package does not follow the soname rule.
_APT_EXCEPTIONS = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libgio-2.0.so.0": "libglib2.0-0",
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
LDD_TIMEOUT_S = 30.0


def apt_package(soname: str) -> str:
    """The Debian/Ubuntu package of a library: ``libfoo.so.4`` → ``libfoo4``, and a name
    that ends in a digit takes a dash (``libdbus-1.so.3`` → ``libdbus-1-3``)."""
    if soname in _APT_EXCEPTIONS:
        return _APT_EXCEPTIONS[soname]
    name, sep, version = soname.partition(".so.")
    if not sep:
        return soname.lower()
    version = version.split(".")[0]
    dash = "-" if name[-1:].isdigit() else ""
    return f"{name}{dash}{version}".lower()


def install_lines(sonames: Sequence[str]) -> str:
    """The commands that install ``sonames``: apt by package, dnf by what they provide."""
    apt = " ".join(dict.fromkeys(apt_package(s) for s in sonames))
    dnf = " ".join(f"'{s}()(64bit)'" for s in sonames)
    return f"sudo apt install {apt} (Fedora/RHEL: sudo dnf install {dnf})"


def qt_folder() -> Path | None:
    """PySide6's ``Qt`` folder (in a frozen build, the bundle's), or None."""
    if getattr(sys, "frozen", False):
        base = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
        return base / "PySide6" / "Qt"
    spec = importlib.util.find_spec("PySide6")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "Qt"


def xcb_plugin_files(qt: Path) -> list[Path]:
    """The xcb platform plugin and its Qt library, those of them that exist."""
    files = [qt / "plugins" / "platforms" / "libqxcb.so"]
    files += sorted((qt / "lib").glob("libQt6XcbQpa.so*"))
    return [f for f in files if f.is_file()]


def missing_libraries(files: Sequence[Path], ldd: str) -> list[str]:
    """Sonames that ``ldd`` cannot resolve for any of ``files``, in order, once each."""
    missing: dict[str, None] = {}
    for path in files:
        result = subprocess.run(
            [ldd, str(path)], capture_output=True, text=True, timeout=LDD_TIMEOUT_S, check=False
        )
        for name in _NOT_FOUND.findall(result.stdout):
            missing.setdefault(name)
    return list(missing)


def _uses_x11(env: Mapping[str, str]) -> bool:
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.startswith("xcb")
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def check_xcb_libraries(
    qt: Path | None = None, environ: Mapping[str, str] | None = None
) -> list[Check]:
    """One line: every library of the xcb plugin found, or the missing ones and the fix."""
    if not sys.platform.startswith("linux"):
        return []
    qt = qt if qt is not None else qt_folder()
    files = xcb_plugin_files(qt) if qt is not None else []
    if not files:
        return []  # no PySide6: check_qt says so
    ldd = shutil.which("ldd")
    if ldd is None:
        return [Check("warn", "x11 libraries", "not checked: ldd is not installed", "")]
    try:
        missing = missing_libraries(files, ldd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Check("warn", "x11 libraries", f"not checked: ldd failed: {exc}", "")]
    if not missing:
        return [Check("ok", "x11 libraries", "every library of Qt's xcb platform plugin is found")]
    env = os.environ if environ is None else environ
    level: Level = "fail" if _uses_x11(env) else "warn"
    return [
        Check(
            level,
            "x11 libraries",
            f"Qt's xcb platform plugin (the window on X11) needs {', '.join(missing)}, "
            "not installed: the window aborts at start",
            install_lines(missing),
        )
    ]


def launch_problem(qt: Path | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The one line ``gui`` prints instead of opening the window when the xcb plugin's
    libraries are missing on X11, or None. Without it Qt aborts the process with a
    message that may blame ``libxcb-cursor0`` whatever is missing (issue 15), and the
    user has to know to run ``doctor``."""
    for check in check_xcb_libraries(qt, environ):
        if check.level == "fail":
            return f"error: {check.detail}; install them: {check.fix}"
    return None
