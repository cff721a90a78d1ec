"""``doctor`` names the X11 libraries Qt's xcb plugin cannot find (issue 15: the window
aborted until libxcb-icccm4 and libxcb-keysyms1 were installed; Qt blamed
libxcb-cursor0 and doctor said all was well).

No package is uninstalled: a copy of the real plugin has two of its library names
changed to ones that exist nowhere, and the real ``ldd`` is run on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.doctor_xcb import apt_package, check_xcb_libraries, install_lines, qt_folder

pytestmark = pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd (Linux) needed")

#: Same length as the real names, so the copy stays a valid ELF file.
RENAMED = {
    b"libxcb-icccm.so.4": b"libxcb-iccxx.so.4",
    b"libxcb-keysyms.so.1": b"libxcb-keysxxx.so.1",
}


def test_the_issue_s_libraries_map_to_their_packages() -> None:
    assert [apt_package(s) for s in ("libxcb-icccm.so.4", "libxcb-keysyms.so.1")] == [
        "libxcb-icccm4",
        "libxcb-keysyms1",
    ]
    assert apt_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert apt_package("libX11-xcb.so.1") == "libx11-xcb1"
    assert apt_package("libdbus-1.so.3") == "libdbus-1-3"
    assert apt_package("libglib-2.0.so.0") == "libglib2.0-0"
    assert install_lines(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]) == (
        "sudo apt install libxcb-icccm4 libxcb-keysyms1 (Fedora/RHEL: sudo dnf install "
        "'libxcb-icccm.so.4()(64bit)' 'libxcb-keysyms.so.1()(64bit)')"
    )


def _fake_qt(tmp_path: Path) -> Path:
    """A Qt folder whose xcb plugin links two libraries that do not exist."""
    real = qt_folder()
    assert real is not None
    plugin = real / "plugins" / "platforms" / "libqxcb.so"
    data = plugin.read_bytes()
    for old, new in RENAMED.items():
        assert len(old) == len(new)
        assert old + b"\0" in data, f"{plugin} does not link {old.decode()}"
        data = data.replace(old + b"\0", new + b"\0")
    qt = tmp_path / "Qt"
    (qt / "plugins" / "platforms").mkdir(parents=True)
    (qt / "plugins" / "platforms" / "libqxcb.so").write_bytes(data)
    (qt / "lib").symlink_to(real / "lib")  # the plugin's runpath: $ORIGIN/../../lib
    return qt


def test_missing_libraries_are_named_with_the_install_line(tmp_path: Path) -> None:
    qt = _fake_qt(tmp_path)
    (check,) = check_xcb_libraries(qt, {"DISPLAY": ":0"})
    assert check.level == "fail"
    gone = [n.decode() for n in RENAMED.values()]
    assert f"needs {', '.join(gone)}, not installed" in check.detail
    assert check.fix.startswith("sudo apt install libxcb-iccxx4 libxcb-keysxxx1 (Fedora")
    assert "sudo dnf install 'libxcb-iccxx.so.4()(64bit)'" in check.fix
    # Without X (Wayland, or no display) the window does not need them: a warning.
    (check,) = check_xcb_libraries(qt, {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"})
    assert check.level == "warn"


def test_the_real_plugin_s_libraries_are_all_found() -> None:
    """This machine (and CI's) has them: the check says ok, naming nothing."""
    (check,) = check_xcb_libraries(None, {"DISPLAY": ":0"})
    assert (check.level, check.what) == ("ok", "x11 libraries"), check.line()


def test_the_first_command_names_the_missing_libraries_instead_of_aborting(
    tmp_path: Path,
) -> None:
    """``trading-client`` (the README's first command) on X11 with the libraries missing:
    one line naming them and the install command, exit 2 — not Qt's abort (SIGABRT)
    blaming another library."""
    qt = _fake_qt(tmp_path)
    script = (
        "import sys; from pathlib import Path; import app.doctor_xcb as d; "
        f"d.qt_folder = lambda: Path({str(qt)!r}); "
        "from trading_client import main; sys.exit(main(['gui', '--config', sys.argv[1]]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = ":97"  # X11, as on a desktop
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "settings.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-500:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "libxcb-iccxx.so.4, libxcb-keysxxx.so.1, not installed" in lines[0]
    assert "sudo apt install libxcb-iccxx4 libxcb-keysxxx1" in lines[0]
    assert not (tmp_path / "settings.json").exists()  # nothing started
