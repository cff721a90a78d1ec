"""Command-line parts of replay and export.

* ``trading-client export ticks|bars ...``: :func:`add_export_parser` / :func:`run_export`;
* ``trading-client run --source replay:FILE[,FILE...]``: :func:`add_replay_arguments`,
  :func:`apply_replay_source` (turns the option into a ``kind="replay"`` terminal) and
  :class:`ReplayEndWatch` (lets ``run`` stop once the whole replay was captured).

``app/cli.py`` only registers these; everything about them lives here.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import ClientConfig, ConfigError, load_config
from app.config.store import default_config_path
from app.export.api import ExportProgress, export_bars, export_ticks, parse_time
from app.security.redact import escape_controls
from app.server.store import stored_symbols
from app.servertime import NY_CLOSE, ServerTimeZone, parse_server_time_zone
from app.terminal.export_files import (
    TIMEFRAMES,
    ExportFormatError,
    ExportUnavailableError,
    TextEncoding,
)
from app.terminal.replay import plan_of_spec, symbol_from_file_name
from app.untrusted import check_regular_file

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = [
    "ReplayEndWatch",
    "add_export_parser",
    "add_replay_arguments",
    "apply_replay_source",
    "replay_files_from_source",
    "run_export",
]

EXAMPLES = """examples:
  trading-client export ticks --symbol EURUSD --db ticks.sqlite --out EURUSD_ticks.csv
  trading-client export bars --timeframe M5 --symbol EURUSD --input EURUSD_2024.csv \\
      --from 2024-01-02 --to 2024-01-03 --out EURUSD_M5.csv
  trading-client export ticks --symbol XAUUSD --db ticks.sqlite --format parquet --out x.parquet

Files are written in server time, like the terminal's own exports. --from/--to are
server time too (as MT5 shows it), e.g. 2024-01-02T10:00:00, or epoch ms. The database
holds UTC: --db exports convert with --server-time-zone (default: the zone of the
configured terminal capturing the symbol, else ny-close; the first line on stderr says
which). Export files (--input) are already in server time and are not converted.
"""


def add_export_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help="write ticks or bars of a symbol to an MT5 export, CSV or Parquet file",
        description="Export ticks or M1..MN1 bars of one symbol from the reference backend's "
        "database or from MT5 tick export files.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=["ticks", "bars"], help="what to export")
    parser.add_argument("--symbol", required=True, help="the symbol, e.g. EURUSD")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", type=Path, metavar="FILE", help="reference backend SQLite file")
    source.add_argument(
        "--input", type=Path, nargs="+", metavar="FILE", help="MT5 tick export file(s)"
    )
    parser.add_argument("--client-id", help="--db only: only ticks sent by this client")
    parser.add_argument(
        "--server-time-zone",
        metavar="ZONE",
        help="--db only: write in this server time: ny-close, an IANA name or +02:00 "
        "(default: the capturing terminal's zone in the settings, else ny-close)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="settings file naming the terminals (default: the user's settings file)",
    )
    parser.add_argument("--from", dest="start", metavar="TIME", help="first time (inclusive)")
    parser.add_argument("--to", dest="end", metavar="TIME", help="last time (exclusive)")
    parser.add_argument(
        "--timeframe", default="M1", type=str.upper, choices=list(TIMEFRAMES), help="bars only"
    )
    parser.add_argument("--format", default="mt5", choices=["mt5", "csv", "parquet"])
    parser.add_argument(
        "--digits", type=int, help="decimals of prices (default: shortest exact / inferred)"
    )
    parser.add_argument(
        "--utf16", action="store_true", help="UTF-16 LE with BOM and CRLF, as MT5 writes"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="output file")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def run_export(args: argparse.Namespace) -> int:
    """Run ``export``; 0 on success, 2 on bad input (one clear line on stderr)."""
    try:
        start = parse_time(args.start) if args.start else None
        end = parse_time(args.end) if args.end else None
    except ValueError as exc:
        print(f"error: {escape_controls(str(exc))}", file=sys.stderr)
        return 2
    problem = _input_problem(args, start, end)
    if problem:
        print(f"error: {escape_controls(problem)}", file=sys.stderr)
        return 2
    try:
        zone, said = export_zone(args)
    except (ValueError, ConfigError) as exc:
        print(f"error: {escape_controls(str(exc))}", file=sys.stderr)
        return 2
    if said is not None:
        print(escape_controls(said), file=sys.stderr, flush=True)
    source = args.db if args.db is not None else list(args.input)
    last_shown = -1.0

    def progress(p: ExportProgress) -> None:
        nonlocal last_shown
        if args.quiet or p.rows == 0:
            return
        if p.finished or p.fraction - last_shown >= 0.1 or not p.end_msc:
            last_shown = p.fraction
            print(f"  {p.rows:,} ticks read", file=sys.stderr, flush=True)

    encoding: TextEncoding = "utf-16" if args.utf16 else "utf-8"
    try:
        if args.what == "ticks":
            rows = export_ticks(
                source,
                args.symbol,
                args.out,
                start_msc=start,
                end_msc=end,
                fmt=args.format,
                digits=args.digits,
                encoding=encoding,
                client_id=args.client_id,
                progress=progress,
                zone=zone,
            )
        else:
            rows = export_bars(
                source,
                args.symbol,
                args.out,
                args.timeframe,
                start_msc=start,
                end_msc=end,
                fmt=args.format,
                digits=args.digits,
                encoding=encoding,
                client_id=args.client_id,
                progress=progress,
                zone=zone,
            )
    except (ExportFormatError, ExportUnavailableError, ValueError, FileNotFoundError) as exc:
        print(f"error: {escape_controls(str(exc))}", file=sys.stderr)
        return 2
    what = "ticks" if args.what == "ticks" else f"{args.timeframe} bars"
    print(f"wrote {rows:,} {what} of {args.symbol} to {args.out}")
    return 0


def _input_problem(args: argparse.Namespace, start: int | None, end: int | None) -> str:
    """Why the export cannot give what was asked for ("" when it can): said before any
    file is opened or written, instead of "wrote 0 ticks" and exit 0."""
    if start is not None and end is not None and start >= end:
        return f"--from {args.start} is not before --to {args.end}: the span is empty"
    if args.db is None:
        return ""
    if not args.db.is_file():
        return f"--db {args.db}: no such database file (the backend's SQLite file)"
    try:
        symbols = stored_symbols(args.db)
    except sqlite3.Error as exc:
        return f"--db {args.db}: not a backend tick database ({exc})"
    if args.symbol not in symbols:
        held = ", ".join(sorted(symbols)[:20]) or "no ticks at all"
        return f"--db {args.db} has no ticks of {args.symbol} (it holds: {held})"
    return ""


def export_zone(args: argparse.Namespace) -> tuple[ServerTimeZone | None, str | None]:
    """The server zone an export writes in, and the line that says so (None: files in,
    files out, nothing converted, nothing to say).

    The database holds UTC; its ticks are written in ``--server-time-zone``, else the
    zone of the first configured terminal that captures the symbol, else ny-close (a
    terminal left to detect its zone gives no answer offline). Export files are already
    in server time: None.
    """
    if args.db is None:
        if args.server_time_zone:
            raise ValueError(
                "--server-time-zone is for --db: export files are already in server time"
            )
        return None, None
    if args.server_time_zone:
        zone = parse_server_time_zone(args.server_time_zone)
        return zone, f"server time: {zone.key} (--server-time-zone)"
    config = _settings(args.config)
    hint = "; --server-time-zone chooses another"
    for term in config.terminals if config is not None else ():
        if args.symbol in term.symbols:
            found = term.to_spec().zone()
            if found is not None:
                return found, f"server time: {found.key} (terminal {term.name!r}){hint}"
            return NY_CLOSE, (
                f"server time: ny-close (terminal {term.name!r} detects its zone only while "
                f"running){hint}"
            )
    return NY_CLOSE, f"server time: ny-close (no configured terminal captures {args.symbol}){hint}"


def _settings(path: Path | None) -> ClientConfig | None:
    """The named settings (must be valid), else the user's file if it reads, else None."""
    if path is not None:
        return load_config(path)
    default = default_config_path()
    if not default.is_file():
        return None
    try:
        return load_config(default)
    except ConfigError:
        return None


# ---------------------------------------------------------------- run --source replay:


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        metavar="replay:FILE[,FILE...]",
        help="replay MT5 tick export files instead of the configured terminals; the symbol "
        "is the file name up to the first '_' (EURUSD_2024....csv), or --symbols when one "
        "symbol is given; stops once everything was captured",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="--source only: 1 = real time, 10 = ten times faster, 0 = as fast as possible "
        "(default)",
    )
    p.add_argument(
        "--shift-to-now",
        action="store_true",
        help="--source only: stamp the first tick with the start time (ticks look live)",
    )


def replay_files_from_source(source: str, symbols: Sequence[str] | None) -> dict[str, list[Path]]:
    """``replay:A.csv,B.csv`` → symbol → files; see :func:`add_replay_arguments`."""
    kind, _, rest = source.partition(":")
    if kind != "replay" or not rest:
        raise ConfigError(f"--source: expected replay:FILE[,FILE...], got {source!r}")
    paths = [Path(p) for p in rest.split(",") if p]
    files: dict[str, list[Path]] = {}
    if symbols and len(symbols) == 1:
        files[symbols[0]] = paths
        return files
    for path in paths:
        try:
            symbol = symbol_from_file_name(path)
        except ValueError as exc:
            raise ConfigError(f"--source: {exc}") from None
        files.setdefault(symbol, []).append(path)
    if symbols:
        unknown = sorted(set(files) - set(symbols))
        if unknown:
            raise ConfigError(
                f"--source: files for {', '.join(unknown)} but --symbols lists {', '.join(symbols)}"
            )
    return files


def apply_replay_source(config: ClientConfig, args: argparse.Namespace) -> ClientConfig:
    """The settings with the terminals replaced by one replay terminal, if ``--source``."""
    source = getattr(args, "source", None)
    if not source:
        return config
    files = replay_files_from_source(source, args.symbols)
    for sym, paths in files.items():
        for p in paths:
            if not p.exists():
                raise ConfigError(f"--source: {sym}: {p} does not exist")
            try:
                check_regular_file(p)
            except OSError as exc:
                raise ConfigError(f"--source: {sym}: {p}: {exc.strerror or exc}") from None
    data = config.model_dump()
    data["terminals"] = [
        {
            "name": "replay",
            "kind": "replay",
            "symbols": list(files),
            "replay_files": {s: [str(p) for p in ps] for s, ps in files.items()},
            "replay_speed": args.speed,
            "replay_shift_to_now": args.shift_to_now,
        }
    ]
    data["pool"]["size"] = min(data["pool"]["size"], len(files))
    try:
        return ClientConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"command line: {exc}") from None


class ReplayEndWatch:
    """Tells ``run`` when a replay is over: every replayed symbol's last tick is in the
    collector and nothing new arrived since the previous check."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._end: dict[str, int] = {}
        specs = {w.terminal.name: w.terminal for w in runtime.planned_workers}
        for spec in specs.values():
            if spec.kind == "replay":
                self._end.update(plan_of_spec(spec).end_ms)
        self._last_total = -1

    @property
    def active(self) -> bool:
        return bool(self._end)

    def finished(self) -> bool:
        if not self._end:
            return False
        stats = self._runtime.collector.stats
        total = stats.ticks_total
        reached = all(
            sym in stats.symbols and stats.symbols[sym].last_time_msc >= end
            for sym, end in self._end.items()
        )
        done = reached and total == self._last_total
        self._last_total = total
        return done
