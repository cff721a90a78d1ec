"""``trading-client doctor``: check this machine and the settings, one line per check.

Why: most first-run trouble is outside the code — no display or a missing library for
Qt, no fonts, no keyring, a backend that is not running, a TLS pin that no longer
matches, a broken settings file, a full disk. Each check prints ``[ok]``, ``[warn]`` or
``[fail]``, what it found and, when something is wrong, the fix. The exit code is 1 when
any check failed, so scripts and support can use it.

The core never imports Qt (an import contract), and a Qt platform plugin that cannot
load aborts its process; so Qt is probed in a child process (``python -m ui.probe``, or
the frozen executable with ``TRADING_CLIENT_QT_PROBE=1``) and only its verdict is read.
Nothing here writes a file or starts a server.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from app import __version__
from app.config import ClientConfig, ConfigError
from app.config.store import ConfigStore, default_config_path
from app.doctor_check import Check, tcp_error
from app.doctor_nats import check_nats
from app.doctor_terminals import check_metatrader5, check_remote_terminals, check_server_time
from app.doctor_xcb import check_xcb_libraries
from app.logfiles import log_file_path
from app.paths import app_paths, data_dir
from app.ports import is_loopback
from app.security.connections import tls_settings
from app.security.logins import needs_vault
from app.security.tls import (
    TlsSettings,
    check_plaintext_url,
    make_client_context,
    spki_sha256,
)
from app.security.vault import default_vault_path, keyring_status

EXAMPLES = """examples:
  trading-client doctor
  trading-client doctor --config my-config.json
  trading-client doctor --timeout 3      # slower networks: wait longer for each backend
"""

#: Below this much free space on the data folder's drive capture will soon fail.
FAIL_FREE_BYTES = 200 * 1024 * 1024
WARN_FREE_BYTES = 2 * 1024 * 1024 * 1024
QT_PROBE_TIMEOUT_S = 60.0
_DEFAULT_PORTS = {"ws": 80, "http": 80, "wss": 443, "https": 443}
_LINUX_QT_LIBS = (
    "libegl1 libgl1 libglib2.0-0 libfontconfig1 libfreetype6 libxkbcommon0 libdbus-1-3 "
    "libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 "
    "libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libx11-xcb1"
)


# ---------------------------------------------------------------------- settings
def check_settings(path: Path, explicit: bool) -> tuple[Check, ClientConfig]:
    """The settings file's verdict, and the settings the other checks should use."""
    if not path.exists():
        if explicit:
            return (
                Check("fail", "settings", f"{path} does not exist", "check the --config path"),
                ClientConfig(),
            )
        return (
            Check(
                "ok",
                "settings",
                f"{path} not created yet: the defaults are written at the first start",
            ),
            ClientConfig(),
        )
    try:
        config = ConfigStore(path).read()
    except ConfigError as exc:
        fix = (
            "correct the field named above in the file, or restore the newest backup: "
            "trading-client config rollback 0"
        )
        if explicit:
            fix = "correct the field named above (trading-client config validate --config FILE)"
        return Check("fail", "settings", str(exc), fix), ClientConfig()
    return Check("ok", "settings", f"{path} is valid"), config


# ---------------------------------------------------------------------- python, Qt
def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    where = "bundled" if getattr(sys, "frozen", False) else sys.executable
    return Check("ok", "python", f"{version} ({where}), trading-client {__version__}")


def display_available(environ: dict[str, str] | None = None) -> bool:
    """Whether Qt has somewhere to draw (same rule as the window's own start-up check)."""
    env = os.environ if environ is None else environ
    if sys.platform in ("win32", "darwin"):
        return True
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def _qt_probe_command() -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if getattr(sys, "frozen", False):
        env["TRADING_CLIENT_QT_PROBE"] = "1"
        return [sys.executable], env
    return [sys.executable, "-m", "ui.probe"], env


def _qt_failure_hint(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if "qt.qpa" in ln or "needed" in ln or "could not" in ln.lower()]
    text = "; ".join(useful[:2] or lines[-1:])
    return text[:300] if text else "no output"


def check_qt() -> list[Check]:
    """The window's prerequisites: PySide6, a platform plugin that starts, and fonts."""
    if not getattr(sys, "frozen", False) and importlib.util.find_spec("PySide6") is None:
        return [
            Check("fail", "qt", "PySide6 is not installed", "pip install trading-client (or -e .)")
        ]
    command, env = _qt_probe_command()
    checks: list[Check] = []
    if not display_available(env):
        checks.append(
            Check(
                "warn",
                "display",
                "no X11 or Wayland display (DISPLAY and WAYLAND_DISPLAY are unset): the "
                "window cannot open",
                "run headless with 'trading-client run', or set QT_QPA_PLATFORM=offscreen",
            )
        )
        env["QT_QPA_PLATFORM"] = "offscreen"  # still check that Qt itself can load
    try:
        result = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=QT_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [*checks, Check("fail", "qt", f"the Qt probe did not finish: {exc}", "")]
    probe: dict[str, object] = {}
    if result.returncode == 0 and result.stdout.strip():
        try:
            probe = json.loads(result.stdout.strip().splitlines()[-1])
        except ValueError:
            probe = {}
    if not probe:
        fix = "reinstall trading-client"
        if sys.platform.startswith("linux"):
            fix = (
                f"install the libraries Qt needs (Debian/Ubuntu: apt install {_LINUX_QT_LIBS}), "
                "or run headless with 'trading-client run'"
            )
        platform = env.get("QT_QPA_PLATFORM") or "default"
        return [
            *checks,
            Check(
                "fail",
                "qt",
                f"the '{platform}' platform plugin does not start (exit {result.returncode}): "
                f"{_qt_failure_hint(result.stderr)}",
                fix,
            ),
            check_fonts_without_qt(),
        ]
    checks.append(
        Check(
            "ok",
            "qt",
            f"Qt {probe.get('qt')}, platform '{probe.get('platform')}' starts "
            f"(plugins: {probe.get('plugins')})",
        )
    )
    fonts = probe.get("fonts")
    if isinstance(fonts, int) and fonts > 0:
        checks.append(
            Check("ok", "fonts", f"{fonts} font families, default '{probe.get('default_font')}'")
        )
    else:
        checks.append(
            Check(
                "warn",
                "fonts",
                "Qt found no fonts: the window's text will be missing",
                "install a font (Debian/Ubuntu: apt install fonts-dejavu-core)",
            )
        )
    return checks


def check_fonts_without_qt() -> Check:
    """Fonts through fontconfig when Qt itself could not be asked (Linux)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return Check("warn", "fonts", "not checked: Qt did not start and fc-list is missing", "")
    try:
        result = subprocess.run(
            [fc_list, ":", "family"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("warn", "fonts", f"fc-list failed: {exc}", "")
    families = {ln.strip() for ln in result.stdout.splitlines() if ln.strip()}
    if families:
        return Check("ok", "fonts", f"{len(families)} font families (fontconfig)")
    return Check(
        "warn",
        "fonts",
        "fontconfig lists no fonts",
        "install a font (Debian/Ubuntu: apt install fonts-dejavu-core)",
    )


# ---------------------------------------------------------------------- vault
def check_vault(config: ClientConfig) -> Check:
    mode = config.security.vault
    file = config.security.vault_file or default_vault_path()
    if mode == "file":
        return Check("ok", "vault", f"encrypted file {file} (security.vault = 'file')")
    status = keyring_status()
    if status.usable:
        return Check("ok", "vault", f"system keyring {status.backend}")
    if not (needs_vault(config) or config.backend.gateway_username):
        return Check(
            "ok",
            "vault",
            f"no usable keyring ({status.reason}); no password is needed yet (stored ones "
            f"would go to the encrypted file {file}, under a master password)",
        )
    if mode == "keyring":
        return Check(
            "fail",
            "vault",
            f"the keyring is not usable: {status.reason}",
            "unlock or install a keyring, or set security.vault to 'auto' or 'file'",
        )
    return Check(
        "warn",
        "vault",
        f"no usable keyring ({status.reason}): passwords go to the encrypted file {file}, "
        "protected by a master password",
        "nothing to do if a master password is fine; otherwise install a keyring "
        "(Linux: gnome-keyring or KWallet in a desktop session)",
    )


# ---------------------------------------------------------------------- network
def _host_key(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def pins_for(settings: TlsSettings, host: str, port: int) -> tuple[str, ...]:
    """The pins that apply to host:port: the ``host:port`` entry and the ``host`` entry."""
    wanted = _host_key(host)
    found: list[str] = []
    for key, values in settings.pins.items():
        if key.startswith("["):
            key_host, _, rest = key[1:].partition("]")
            key_port = rest[1:] if rest.startswith(":") else ""
        elif key.count(":") == 1:
            key_host, _, key_port = key.partition(":")
        else:
            key_host, key_port = key, ""
        if _host_key(key_host) == wanted and key_port in ("", str(port)):
            found.extend(values)
    return tuple(dict.fromkeys(found))


def check_tls(
    name: str, url: str, host: str, port: int, *, settings: TlsSettings, timeout: float
) -> Check:
    """What the server presents vs. what the settings trust and pin."""
    what = f"tls {name}"
    expected = pins_for(settings, host, port)
    unpinned = TlsSettings(min_version=settings.min_version, ca_bundle=settings.ca_bundle)
    try:
        context = make_client_context(unpinned, url)
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            version = tls.version() or "TLS"
    except ssl.SSLCertVerificationError as exc:
        return Check(
            "fail",
            what,
            f"{host}:{port}: certificate not trusted: {exc.verify_message}",
            "give the server's CA in security.tls.ca_bundle, or fix the server's certificate",
        )
    except (OSError, ssl.SSLError, ValueError) as exc:
        return Check(
            "fail",
            what,
            f"{host}:{port}: TLS handshake failed: {exc}",
            "check that the port speaks TLS and security.tls.min_version",
        )
    if der is None:
        return Check("fail", what, f"{host}:{port}: the server sent no certificate", "")
    actual = spki_sha256(der)
    if not expected:
        return Check("ok", what, f"{version}, certificate verified, not pinned (its pin: {actual})")
    if actual in expected:
        return Check("ok", what, f"{version}, certificate verified, pin matches")
    return Check(
        "fail",
        what,
        f"{host}:{port} presents key pin {actual}; the settings pin {', '.join(expected)}",
        "if the server's key was changed on purpose, add the new pin to security.tls.pins; "
        "otherwise do not connect: the connection may be intercepted",
    )


def check_backend(config: ClientConfig, timeout: float) -> list[Check]:
    b = config.backend
    if not b.enabled:
        return [
            Check(
                "ok",
                "backend",
                "disabled (backend.enabled = false): ticks are captured, not streamed",
            )
        ]
    settings = tls_settings(config.security)
    endpoints = [("bridge", b.bridge_url), ("gateway", b.gateway_url), ("hub", b.hub_url)]
    parsed: list[tuple[str, str, str, int, str | None]] = []
    checks: list[Check] = []
    for name, url in endpoints:
        parts = urlsplit(url)
        try:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
        except ValueError:
            port = 0
        host = parts.hostname or ""
        if not host or not port:
            checks.append(
                Check("fail", name, f"{url} has no host or port", f"correct backend.{name}_url")
            )
            continue
        parsed.append((name, url, host, port, tcp_error(host, port, timeout)))
    bridge_up = any(n == "bridge" and err is None for n, _, _, _, err in parsed)
    for name, url, host, port, error in parsed:
        local = is_loopback(_host_key(host))
        embedded = local and (b.embedded == "always" or (b.embedded == "auto" and not bridge_up))
        if error is None:
            if local and b.embedded == "always":
                checks.append(
                    Check(
                        "warn",
                        name,
                        f"{url}: port {port} is taken, so the embedded backend "
                        "(backend.embedded = 'always') cannot start",
                        "stop the program on that port, or set backend.embedded to 'auto' "
                        "to use it",
                    )
                )
            else:
                checks.append(Check("ok", name, f"{url}: listening"))
                if parts_scheme(url) in ("https", "wss"):
                    checks.append(
                        check_tls(name, url, host, port, settings=settings, timeout=timeout)
                    )
        elif embedded:
            checks.append(
                Check("ok", name, f"{url}: not running — the embedded backend will start it")
            )
        else:
            if local:
                fix = (
                    "start it: trading-client backend (in another terminal), or set "
                    "backend.embedded to 'auto' to start it inside the client"
                )
            else:
                fix = f"check backend.{name}_url, the network and the firewall" + (
                    "; ticks are kept in the spool until it is back" if name == "bridge" else ""
                )
            checks.append(
                Check("fail" if name == "bridge" else "warn", name, f"{url}: {error}", fix)
            )
        warning = check_plaintext_url(url)
        if warning:
            checks.append(
                Check(
                    "warn",
                    f"{name} encryption",
                    warning,
                    f"use {'wss' if url.startswith('ws') else 'https'}:// for backend.{name}_url",
                )
            )
    return checks


def parts_scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


# ---------------------------------------------------------------------- disk
def check_disk(folder: Path | None = None) -> Check:
    folder = folder if folder is not None else data_dir()
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError as exc:
        return Check("warn", "disk", f"cannot measure free space at {existing}: {exc}", "")
    text = f"{free / 1e9:.1f} GB free for the data folder ({folder})"
    if not os.access(existing, os.W_OK):
        return Check(
            "fail",
            "disk",
            f"{existing} is not writable",
            "fix the folder's permissions (the data, vault and spool live there)",
        )
    if free < FAIL_FREE_BYTES:
        return Check("fail", "disk", text, "free some space: capture stops when the disk is full")
    if free < WARN_FREE_BYTES:
        return Check("warn", "disk", text, "free some space: the spool and history need room")
    return Check("ok", "disk", text)


# ---------------------------------------------------------------------- command
def run_checks(config_path: Path | None, timeout: float) -> tuple[list[Check], ClientConfig, Path]:
    path = config_path if config_path is not None else default_config_path()
    settings_check, config = check_settings(path, explicit=config_path is not None)
    steps: list[Callable[[], list[Check]]] = [
        lambda: [check_python()],
        lambda: [settings_check],
        check_qt,
        check_xcb_libraries,
        lambda: check_metatrader5(config),
        lambda: check_server_time(config),
        lambda: check_remote_terminals(config, timeout),
        lambda: [check_vault(config)],
        lambda: check_backend(config, timeout),
        lambda: check_nats(config, timeout),
        lambda: [check_disk()],
    ]
    checks: list[Check] = []
    for step in steps:
        try:
            checks.extend(step())
        except Exception as exc:  # a check that breaks must not hide the others
            checks.append(
                Check(
                    "fail",
                    "doctor",
                    f"a check crashed: {type(exc).__name__}: {exc}",
                    "please report this",
                )
            )
    return checks, config, path


def doctor(
    config_path: Path | None = None, timeout: float = 1.0, out: Callable[[str], None] = print
) -> int:
    """Run every check and print the report; 0 when nothing failed, else 1."""
    out(f"trading-client {__version__} doctor — Python {sys.version.split()[0]} on {sys.platform}")
    checks, config, path = run_checks(config_path, timeout)
    for check in checks:
        out(check.line())
    out("paths:")
    paths = app_paths(path, config)
    for label, where in [*paths.items(), ("log file", log_file_path())]:
        out(f"  {label:<9} {where}")
    failed = sum(c.level == "fail" for c in checks)
    warned = sum(c.level == "warn" for c in checks)
    out(
        f"{len(checks) - failed - warned} ok, {warned} warning{'s' * (warned != 1)}, "
        f"{failed} failure{'s' * (failed != 1)}"
    )
    return 1 if failed else 0


def add_doctor_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check this machine and the settings: Qt, fonts, keyring, backend, TLS, disk",
        description="Check the environment and the settings; one line per check with the fix. "
        "Exit code 1 when a check failed.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, help="settings file (JSON); default: the user's settings file"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds to wait for each backend connection (default 1)",
    )


def run_doctor(args: argparse.Namespace) -> int:
    return doctor(args.config, args.timeout)
