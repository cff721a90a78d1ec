"""``trading-client`` command line: one entry point for every way to run the client."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
from pydantic import ValidationError

from app import __version__
from app.bench.cli import add_bench_parser
from app.config import ClientConfig, ConfigError, load_config
from app.config.cli import add_config_parser, run_config
from app.config.gateway_sync import sync_with_gateway
from app.config.load import describe_validation_error
from app.config.store import ConfigStore, default_config_path
from app.config.sync import SyncResult
from app.connector import WorkerState
from app.connector.backfill import format_progress
from app.doctor import add_doctor_parser, run_doctor
from app.export.cli import (
    ReplayEndWatch,
    add_export_parser,
    add_replay_arguments,
    apply_replay_source,
    run_export,
)
from app.link.link import LinkState
from app.logfiles import install_file_log
from app.memory import return_large_buffers_to_os
from app.monitor.alerts import AlertEvent
from app.nats.store_cli import add_store_parser, run_store
from app.runtime import Runtime, RuntimeStatus
from app.security.audit import AuditLog
from app.security.cli import (
    SecretSafeArgumentParser,
    add_credentials_parser,
    run_credentials,
    take_env_master_password,
)
from app.security.logins import (
    MissingCredentialError,
    backend_credential,
    nats_credential,
    needs_backend_credential,
    needs_nats_credential,
    needs_vault,
    open_configured_vault,
    prompt_master_password,
    terminal_passwords,
)
from app.security.redact import escape_controls, install_redaction
from app.security.secret import Secret
from app.security.vault import VaultError
from app.server.cli import add_backend_parser, run_backend
from app.terminal.cli import add_terminal_parser, run_terminal
from app.trading.cli import add_trade_parser, run_trade

log = logging.getLogger("trading_client")

_STATE_MARK = {
    WorkerState.CONNECTING: "c",
    WorkerState.STREAMING: "S",
    WorkerState.OFFLINE: "o",
    WorkerState.STALLED: "!",
    WorkerState.BACKING_OFF: "b",
    WorkerState.FAILED: "X",
    WorkerState.STOPPED: "-",
}

EXAMPLES = """examples:
  trading-client                                 # open the window
  trading-client doctor                          # check this machine and the settings
  trading-client run --duration 10               # capture headless for 10 s
  trading-client config validate settings.json
  trading-client export ticks --symbol EURUSD --db ticks.sqlite --format csv --out eurusd.csv
  trading-client bench pipeline --seconds 5
  trading-client COMMAND --help                  # each command's options and examples
"""

EXAMPLES_RUN = """examples:
  trading-client run --duration 10
  trading-client run --symbols EURUSD XAUUSD --rate 2000
  trading-client run --config my-config.json --workers 3
"""


def _build_parser() -> argparse.ArgumentParser:
    # Error messages must not echo what was typed: a mistyped line may hold a password.
    parser = SecretSafeArgumentParser(
        prog="trading-client",
        description="Capture every MetaTrader 5 tick, aggregate, cache and stream it.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    # Sub-commands are built by their own modules against the plain ArgumentParser type;
    # they are SecretSafeArgumentParser instances all the same (argparse uses our class).
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND"),
    )
    run = sub.add_parser(
        "run",
        help="capture headless, printing a status line each second",
        epilog=EXAMPLES_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_arguments(run)
    gui = sub.add_parser(
        "gui",
        help="open the desktop window (the default when no command is given)",
        epilog=EXAMPLES_GUI,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_gui_arguments(gui)
    add_backend_parser(sub)
    add_config_parser(sub)
    add_credentials_parser(sub)
    add_export_parser(sub)
    add_doctor_parser(sub)
    add_terminal_parser(sub)
    add_trade_parser(sub)
    add_bench_parser(sub)
    add_store_parser(sub)
    return parser


EXAMPLES_GUI = """examples:
  trading-client
  trading-client gui --theme light
  QT_QPA_PLATFORM=offscreen trading-client gui --screenshot window.png --quit-after 5
"""


def _add_gui_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", type=Path, help="settings file (JSON); default: the user's settings file"
    )
    p.add_argument(
        "--screenshot", type=Path, metavar="FILE", help="save a PNG of the window before quitting"
    )
    p.add_argument("--quit-after", type=float, metavar="S", help="close the window after S seconds")
    p.add_argument("--theme", choices=["dark", "light"], help="colour theme (default: last used)")


@dataclass(frozen=True, slots=True)
class WindowCommands:
    """The commands that need the window (Qt), handed in by the entry point.

    The core never imports ``ui``: the ``trading_client`` package — the composition root
    behind the ``trading-client`` executable — supplies these, loading Qt only when one
    of them runs. ``python -m app`` has none and runs the headless commands only.
    """

    #: (settings file, screenshot file, quit after seconds, theme) → exit code.
    gui: Callable[[Path, Path | None, float | None, str | None], int]
    #: seconds per phase → the JSON document of ``bench gui``.
    bench_gui: Callable[[float], dict[str, object]]


NO_WINDOW = (
    "error: this entry point runs the headless commands only; "
    "open the window with 'trading-client' (or python -m trading_client)"
)


def _gui(args: argparse.Namespace, window: WindowCommands | None) -> int:
    if window is None:
        print(NO_WINDOW, file=sys.stderr)
        return 2
    if args.screenshot is not None and args.quit_after is None:
        print("error: --screenshot needs --quit-after S", file=sys.stderr)
        return 2
    path = args.config if args.config is not None else default_config_path()
    return window.gui(path, args.screenshot, args.quit_after, args.theme)


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", type=Path, help="settings file (JSON); default: the user's settings file"
    )
    p.add_argument(
        "--stats",
        type=Path,
        metavar="FILE",
        help="write a JSON summary at the end (totals, rates, latency percentiles, peaks, alerts)",
    )
    p.add_argument(
        "--history",
        type=Path,
        metavar="FILE",
        help="write the per-second metrics history at the end (.csv, or .json)",
    )
    p.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)"
    )
    p.add_argument("--symbols", nargs="+", metavar="SYMBOL", help="capture these symbols instead")
    p.add_argument("--rate", type=float, help="simulated terminal: ticks per second per symbol")
    p.add_argument("--workers", type=int, help="number of terminal connections (pool size)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.add_argument(
        "--accept-remote-endpoints",
        action="store_true",
        help="take the gateway's changes of where data and credentials go (bridge, gateway, "
        "hub URLs, client id, TLS, vault, audit log ...); without it they are refused",
    )
    add_replay_arguments(p)


def _apply_overrides(config: ClientConfig, args: argparse.Namespace) -> ClientConfig:
    data = config.model_dump()
    if args.symbols:
        first = data["terminals"][0]
        first["symbols"] = list(args.symbols)
        data["terminals"] = [first]
    if args.rate is not None:
        for term in data["terminals"]:
            term["rates"] = dict.fromkeys(term["symbols"], args.rate)
    if args.workers is not None:
        data["pool"]["size"] = args.workers
    try:
        return ClientConfig.model_validate(data)
    except ValidationError as exc:
        # One line per problem, as a settings file gets (not pydantic's text and link).
        raise ConfigError("command line: " + "; ".join(describe_validation_error(exc))) from None


def _link_text(link: LinkState | None) -> str:
    if link is None:
        return ""
    if link.connected:
        return f"  link up, acked {link.ticks_acked:,}, backlog {link.backlog_ticks:,}"
    return f"  link DOWN, backlog {link.backlog_ticks:,}" + (
        f" ({link.last_error})" if link.last_error else ""
    )


def _latency_text(runtime: Runtime) -> str:
    if runtime.monitor is None:
        return ""
    p99 = runtime.monitor.metrics.get("latency.tick_to_collector.p99")
    alerts = runtime.monitor.alerts.unacknowledged_count()
    text = f"  p99 {p99 * 1000:.1f} ms" if isinstance(p99, float) else ""
    return text + (f"  alerts {alerts}" if alerts else "")


def _status_line(status: RuntimeStatus, tps: float) -> str:
    marks = " ".join(f"{w.worker_id}:{_STATE_MARK[w.state]}" for w in status.workers)
    streaming = sum(w.state is WorkerState.STREAMING for w in status.workers)
    return (
        f"{time.strftime('%H:%M:%S')}  {tps:>10,.0f} ticks/s  total {status.ticks:>12,}  "
        f"workers {streaming}/{len(status.workers)} streaming  [{marks}]{_link_text(status.link)}"
    )


def _closed_note(runtime: Runtime, symbols: tuple[str, ...], now: float) -> str:
    """``  market closed, opens Mon 00:00 server time (in 15 h 3 min)`` when every symbol
    of a worker is outside its session: 0 ticks is then the market, not a fault."""
    hours = runtime.market_hours
    if not symbols or not all(hours.closed_until(s, int(now)) > now for s in symbols):
        return ""
    opens = min(hours.closed_until(s, int(now)) for s in symbols)
    first = min(symbols, key=lambda s: hours.closed_until(s, int(now)))
    zone = runtime.zones.zone_or_utc(first)
    when = time.strftime("%a %H:%M", time.gmtime(zone.to_server_s(opens)))
    wait = int(opens - now) // 60
    return f"; market closed, opens {when} server time (in {wait // 60} h {wait % 60} min)"


def _summary(status: RuntimeStatus, elapsed: float, runtime: Runtime | None = None) -> str:
    # The live rate leaves the backfilled history out: thousands of past ticks fetched in
    # the first second would otherwise read as a capture rate the terminal never had.
    live = status.live_ticks
    backfilled = (
        f", {status.history_ticks:,} backfilled from history" if status.history_ticks else ""
    )
    lines = [
        f"captured {status.ticks:,} ticks in {status.batches:,} batches over {elapsed:.1f} s "
        f"({live:,} live, {live / max(elapsed, 1e-9):,.0f} live ticks/s{backfilled})"
    ]
    # Every link of the run ("both": the bridge and the NATS sink, each its own count).
    links: list[LinkState] = []
    if runtime is not None:
        links = list(runtime.final_links) or [lk.state for lk in runtime.delivery.links]
    for link in links or ([status.link] if status.link is not None else []):
        lines.append(
            f"delivered {link.ticks_acked:,} ticks to {link.url} (acked up to seq "
            f"{link.last_acked_seq:,}; {link.backlog_ticks:,} unacknowledged)"
        )
    if runtime is not None and runtime.signals is not None:
        lines.append(runtime.signals.snapshot().summary())
    now = time.time()
    for w in status.workers:
        err = f"  last error: {w.last_error}" if w.last_error else ""
        closed = _closed_note(runtime, tuple(w.symbols), now) if runtime is not None else ""
        lines.append(
            f"  worker {w.worker_id} [{', '.join(w.symbols)}]: {w.state}, {w.ticks:,} ticks, "
            f"{w.reconnects} reconnects{closed}{err}"
        )
    return "\n".join(lines)


def _startup_config(path: Path | None, accept_endpoints: bool = False) -> ClientConfig:
    """The settings to run with.

    A file named on the command line must be valid (exit 2 otherwise: the user is right
    there to fix it). The default file goes through the store: written on first run, and
    a corrupt one is set aside untouched while the newest valid backup is used. With a
    gateway login configured, the gateway's settings are pulled first (its changes of
    where data goes only with ``accept_endpoints``).
    """
    if path is not None:
        return load_config(path)
    store = ConfigStore(default_config_path())
    loaded = store.load()
    for warning in loaded.warnings:
        print(f"warning: {escape_controls(warning)}", file=sys.stderr)
    if loaded.config.backend.gateway_username:
        result = asyncio.run(_pull(store, accept_endpoints))
        if result is not None:
            print(f"settings: {result.status}: {escape_controls(result.message)}", file=sys.stderr)
            if result.config is not None:
                return result.config
    return loaded.config


async def _pull(store: ConfigStore, accept_endpoints: bool) -> SyncResult | None:
    try:
        pull = sync_with_gateway(store, only_pull=True, accept_endpoints=accept_endpoints)
        return await asyncio.wait_for(pull, 10)
    except (TimeoutError, MissingCredentialError, VaultError) as exc:
        print(
            f"warning: settings not pulled from the gateway: {escape_controls(str(exc))}",
            file=sys.stderr,
        )
        return None


def _passwords(config: ClientConfig) -> tuple[dict[str, str], Secret | None, Secret | None]:
    """Terminal passwords, the backend login and the NATS credential, from one opening
    of the vault."""
    backend = needs_backend_credential(config)
    if not needs_vault(config) and not backend and not needs_nats_credential(config):
        return {}, None, None
    audit = AuditLog(config.security.audit_log)
    vault = open_configured_vault(config.security, prompt_master_password, audit)
    credential = backend_credential(config, vault) if backend else None
    return terminal_passwords(config, vault), credential, nats_credential(config, vault)


def _print_alert(event: AlertEvent) -> None:
    alert = event.alert
    print(
        f"{time.strftime('%H:%M:%S')}  ALERT {event.kind.value.upper()} "
        f"[{alert.severity.value}] {alert.message}",
        flush=True,
    )


def _write_stats(path: Path, runtime: Runtime, elapsed: float) -> None:
    status = runtime.status()
    doc: dict[str, object] = {
        "elapsed_s": elapsed,
        "ticks_captured": status.ticks,
        "batches": status.batches,
        "workers": [
            {
                "worker_id": w.worker_id,
                "symbols": list(w.symbols),
                "state": w.state.value,
                "ticks": w.ticks,
                "reconnects": w.reconnects,
                "last_error": w.last_error,
            }
            for w in status.workers
        ],
    }
    if status.link is not None:
        doc["link"] = {
            "ticks_acked": status.link.ticks_acked,
            "backlog_ticks": status.link.backlog_ticks,
            "reconnects": status.link.reconnects,
        }
    if runtime.monitor is not None:
        doc["monitor"] = runtime.monitor.summary()
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


async def _run(
    config: ClientConfig,
    duration: float | None,
    quiet: bool,
    stats: Path | None = None,
    history: Path | None = None,
) -> int:
    passwords, credential, nats_secret = _passwords(config)
    runtime = Runtime(
        config, passwords=passwords, credential=credential, nats_credential=nats_secret
    )
    if runtime.monitor is not None:
        runtime.monitor.alerts.subscribe(_print_alert)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    await runtime.start()
    last_ticks, last_t = 0, started
    replay = ReplayEndWatch(runtime)
    #: Workers seen FAILED (id -> last error): a failure is final for that worker, and
    #: the run must not end with exit 0 although part of the capture never happened.
    failed: dict[int, str] = {}
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            now = time.monotonic()
            status = runtime.status()
            if not quiet:
                tps = (status.live_ticks - last_ticks) / max(now - last_t, 1e-9)
                print(_status_line(status, tps) + _latency_text(runtime), flush=True)
                backfill = format_progress(runtime.backfill.progress())
                if backfill:
                    print(backfill, flush=True)
            last_ticks, last_t = status.live_ticks, now
            failed.update(
                (w.worker_id, w.last_error or "failed")
                for w in status.workers
                if w.state is WorkerState.FAILED
            )
            if replay.finished() or (failed and replay.active):
                break  # a replay with a failed worker can never finish
            if duration is not None and now - started >= duration:
                break
            if status.workers and all(w.state is WorkerState.FAILED for w in status.workers):
                print(_summary(status, now - started, runtime), flush=True)
                first = status.workers[0]
                error = escape_controls(first.last_error or "")
                print(f"error: every worker failed; first: {error}", file=sys.stderr)
                return 1
    finally:
        await runtime.stop()
        if stats is not None:
            _write_stats(stats, runtime, time.monotonic() - started)
        if history is not None and runtime.monitor is not None:
            if history.suffix.lower() == ".json":
                runtime.monitor.history.to_json(history)
            else:
                runtime.monitor.history.to_csv(history)
    print(_summary(runtime.status(), time.monotonic() - started, runtime), flush=True)
    if failed:
        worker_id, error = min(failed.items())
        print(f"error: worker {worker_id} failed: {escape_controls(error)}", file=sys.stderr)
        return 1
    return 0


def _announce(args: argparse.Namespace, text: str) -> None:
    """What a benchmark is about to measure, on stderr (unless only JSON is wanted)."""
    if not args.json:
        print(text, file=sys.stderr)


def _print_result(result: dict[str, Any]) -> int:
    """A benchmark's JSON document on stdout; exit 1 when a part of it failed."""
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 1 if result["failed"] else 0


def _bench(args: argparse.Namespace, window: WindowCommands | None) -> int:
    if args.what == "gui":
        if window is None:
            print(NO_WINDOW, file=sys.stderr)
            return 2
        if not args.json:
            print(
                f"measuring the window: idle, 10k, 100k ticks/s, scrolling 100k bars; "
                f"{args.seconds:g} s each; then a cold start ...",
                file=sys.stderr,
            )
        gui_result = window.bench_gui(args.seconds)
        print(orjson.dumps(gui_result, option=orjson.OPT_INDENT_2).decode())
        # A chart phase that failed its deadline (no answer, not loaded) is a failed run.
        phases = gui_result.get("phases")
        failed = isinstance(phases, list) and any("error" in p for p in phases)
        return 1 if failed else 0
    from app.bench.pipeline import Settings, bench  # noqa: PLC0415 - heavy, only for this command

    if args.what == "scale":
        from app.bench.scale import bench_scale  # noqa: PLC0415 - as above

        _announce(
            args,
            f"measuring {', '.join(map(str, args.clients))} client(s) into a bridge, then a "
            f"3-node NATS cluster; {args.seconds:g} s per run (progress below) ...",
        )
        settings = Settings(seconds=args.seconds, startup_timeout=args.startup_timeout)
        return _print_result(asyncio.run(bench_scale(settings, args.clients)))
    if args.what == "remote":
        from app.bench.remote import bench_remote  # noqa: PLC0415 - as above

        _announce(
            args,
            f"measuring capture through a remote terminal against the native path; "
            f"{args.seconds:g} s per measurement (progress below, JSON at the end) ...",
        )
        settings = Settings(seconds=args.seconds, startup_timeout=args.startup_timeout)
        return _print_result(asyncio.run(bench_remote(settings)))

    if not args.json:
        print(
            f"measuring {', '.join(args.phases)}; {args.seconds:g} s each "
            "(progress below, the JSON document on stdout at the end) ...",
            file=sys.stderr,
        )
    settings = Settings(
        seconds=args.seconds,
        synchronous=args.synchronous,
        phases=args.phases,
        startup_timeout=args.startup_timeout,
    )
    result = asyncio.run(bench(settings))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    # Exit 1 when a phase failed: the document still holds what the others measured.
    return 1 if result["failed"] else 0


def main(argv: Sequence[str] | None = None, window: WindowCommands | None = None) -> int:
    # First of all: no child process started later may inherit the master password.
    take_env_master_password()
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    command = args.command or "gui"
    return_large_buffers_to_os()
    if command in ("run", "gui"):
        install_file_log(command, args.log_level)  # before install_redaction: it covers it
    install_redaction()
    if args.command is None:
        args = _build_parser().parse_args([*(argv or sys.argv[1:]), "gui"])
    try:
        if command == "gui":
            return _gui(args, window)
        if command == "run":
            config = _apply_overrides(
                apply_replay_source(
                    _startup_config(args.config, args.accept_remote_endpoints), args
                ),
                args,
            )
            return asyncio.run(_run(config, args.duration, args.quiet, args.stats, args.history))
        if command == "backend":
            return run_backend(args)
        if command == "config":
            return run_config(args)
        if command == "credentials":
            return run_credentials(args)
        if command == "bench":
            return _bench(args, window)
        if command == "export":
            return run_export(args)
        if command == "doctor":
            return run_doctor(args)
        if command == "store":
            return run_store(args)
        if command in ("terminal", "trade"):
            return run_terminal(args) if command == "terminal" else run_trade(args)
    except (ConfigError, MissingCredentialError, VaultError) as exc:
        print(f"error: {escape_controls(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a fatal error: one clear line, the traceback only in debug
        log.debug("fatal error", exc_info=True)
        print(f"error: {type(exc).__name__}: {escape_controls(str(exc))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
