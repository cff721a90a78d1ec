"""A terminal that replays MT5 tick exports through the ``MetaTrader5`` API.

It is a :class:`~app.terminal.simulated.SimulatedTerminal` whose market is a set of
files instead of a generator, so the connection handling the capture code depends on
(``initialize``/``login``/``shutdown``, ``last_error`` conventions, fault injection
through the control file, symbol selection, ``COPY_TICKS_*`` masks, whole-second
``date_from``) is literally the same code; only the data calls are replaced.

Time. An MT5 export is in the server time of the broker it was recorded at (GMT+2 in
winter at most), so the replay is a terminal of that time zone (``server_time_zone``,
ny-close by default). Inside, it holds each symbol's ticks in UTC, in true order: every
file is converted when it is loaded (``zone.to_utc_ms``, which reads the autumn hour of
a 24/7 symbol by the file's jump back in server time), indexed and searched in UTC, and
stamped in server time again on the way out (``zone.to_server_ms``), as the simulated
terminal does; the worker converts the stamps to UTC like any terminal's. A file in its
zone is served with its stamps as they are. A replay has an *anchor*: the wall-clock
moment (UTC epoch ms) at which it starts, shared by every worker process through
:class:`~app.terminal.spec.TerminalSpec` so that they all see the same replay clock, also
after a restart. With ``speed`` ``s`` (> 0), the tick at UTC ``start + d`` (``start`` =
the first tick of all the files) becomes visible ``d / s`` after the anchor; ``speed =
0`` makes every tick visible at once. With ``shift_to_now``, every tick's UTC time is
moved so that the first tick is at the anchor (stamped with server-now), and at speed 1
replayed ticks carry the server's "now", as if the market were live: a replay that
crosses a DST switch is stamped as the server would stamp it then. Without it, ticks
keep the times in the file. The replay clock runs in true elapsed time (UTC), so the
autumn hour of a file takes an hour, not none, and the spring switch no extra hour.

Files. One or more tick exports per symbol, read with the vectorised reader
(:mod:`app.terminal.export_files`) when the symbol is first selected, then held in
memory (60 bytes per tick). Files of one symbol are ordered by their first tick; where
two overlap, the overlap is taken once (the later file continues from where the earlier
one ended, as a capture cursor would). Bar exports cannot be replayed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.servertime import NY_CLOSE, ServerTimeZone
from app.terminal import constants as c
from app.terminal.arguments import COPY_MASKS, SYMBOL_INFO_ZERO
from app.terminal.export_files import ExportFormatError, ExportReader, read_time_span
from app.terminal.export_files.writer import _stamps  # the files' own date format
from app.terminal.market import SymbolProfile
from app.terminal.simulated import SimulatedTerminal
from app.terminal.types import SymbolInfo, Tick
from app.ticks import TICK_DTYPE, TickArray, empty_ticks
from app.untrusted import check_regular_file

if TYPE_CHECKING:
    from app.terminal.spec import TerminalSpec

__all__ = ["ReplayPlan", "ReplayTerminal", "replay_plan", "symbol_from_file_name"]

log = logging.getLogger(__name__)

_NEVER = np.iinfo(np.int64).max


def symbol_from_file_name(path: Path | str) -> str:
    """The symbol a file is named after: the name up to the first ``_``.

    The terminal proposes names like ``EURUSD_202401020000_202401022359.csv`` (ticks)
    or ``EURUSD_M1_202401020000_202401312359.csv`` (bars); a name without ``_`` is
    taken whole (``XAUUSD.csv`` → ``XAUUSD``). Symbols with ``_`` in their name need
    an explicit symbol.
    """
    stem = Path(path).name.split(".csv")[0].split(".txt")[0]
    name = stem.split("_", 1)[0]
    if not name:
        raise ValueError(f"cannot tell the symbol from the file name {Path(path).name!r}")
    return name


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """Where a replay starts and ends (epoch ms): served (server) times and their UTC.

    Computed from the first and last row of each file only, so planning a replay of
    hundreds of MB costs two small reads per file. The replay runs in UTC (true order,
    true elapsed time); the served stamps are its UTC times on the server's clock.
    """

    #: Time of the first tick in the files (server time, as in the file).
    origin_ms: int
    #: Added to every tick's UTC time: with ``shift_to_now``, the anchor minus the first
    #: tick's UTC (so that it is stamped with server-now), else 0.
    shift_ms: int
    #: Wall-clock (UTC) ms at which the replay starts.
    anchor_ms: int
    speed: float
    #: Time of each symbol's last tick (server time, as in the file).
    last_ms: Mapping[str, int]
    #: The clock the files' and the served times are on.
    zone: ServerTimeZone = NY_CLOSE

    @property
    def start_ms(self) -> int:
        """The first tick in UTC: where capture must start (capture cursors are UTC)."""
        return _utc_ms(self.zone, self.origin_ms) + self.shift_ms

    @property
    def served_start_ms(self) -> int:
        """The served (server) time of the first tick."""
        return _server_ms(self.zone, self.start_ms)

    @property
    def end_ms(self) -> dict[str, int]:
        """Each symbol's last tick in UTC, as the collector will hold it.

        A last tick in the autumn hour is read as the earlier pass (the file's last row
        alone cannot say which): a watch on it may end at most an hour early there.
        """
        return {sym: _utc_ms(self.zone, ms) + self.shift_ms for sym, ms in self.last_ms.items()}

    @property
    def served_end_ms(self) -> dict[str, int]:
        """Served (server) time of each symbol's last tick."""
        return {sym: _server_ms(self.zone, ms) for sym, ms in self.end_ms.items()}

    def visible_until(self, wall_ms: int) -> int:
        """Ticks with a UTC time ``<=`` this are visible at ``wall_ms`` (UTC): the replay
        clock runs from the first tick by elapsed time times ``speed``."""
        if self.speed <= 0:
            return _NEVER
        return self.start_ms + math.floor((wall_ms - self.anchor_ms) * self.speed)

    def finished_at(self) -> float | None:
        """Wall-clock ms at which every tick is visible (None when speed is 0: at once)."""
        if self.speed <= 0 or not self.last_ms:
            return None
        last = max(self.end_ms.values())
        return self.anchor_ms + (last - self.start_ms) / self.speed


def _utc_ms(zone: ServerTimeZone, server_ms: int) -> int:
    return int(zone.to_utc_ms(np.array([server_ms], np.int64))[0])


def _server_ms(zone: ServerTimeZone, utc_ms: int) -> int:
    return int(zone.to_server_ms(np.array([utc_ms], np.int64))[0])


def replay_plan(
    files: Mapping[str, Sequence[Path]],
    *,
    speed: float,
    shift_to_now: bool,
    anchor_ms: int,
    zone: ServerTimeZone = NY_CLOSE,
) -> ReplayPlan:
    """The plan of a replay of ``files`` (symbol → export files) recorded in ``zone``."""
    if not files:
        raise ValueError("a replay needs at least one file")
    spans: dict[str, tuple[int, int]] = {}
    for symbol, paths in files.items():
        if not paths:
            raise ValueError(f"{symbol}: no replay files")
        firsts, lasts = zip(*(read_time_span(p) for p in paths), strict=True)
        spans[symbol] = (min(firsts), max(lasts))
    origin = min(first for first, _ in spans.values())
    # "Now" on the server's clock: the first tick is stamped as the broker would stamp it.
    shift = anchor_ms - _utc_ms(zone, origin) if shift_to_now else 0
    return ReplayPlan(
        origin_ms=origin,
        shift_ms=shift,
        anchor_ms=anchor_ms,
        speed=max(0.0, float(speed)),
        last_ms={sym: last for sym, (_, last) in spans.items()},
        zone=zone,
    )


def plan_of_spec(spec: TerminalSpec) -> ReplayPlan:
    """The plan of a ``kind="replay"`` spec (its anchor must be set)."""
    if spec.replay_anchor_ms is None:
        raise ValueError("a replay spec needs its anchor (TerminalConfig.to_spec sets it)")
    return replay_plan(
        {sym: list(paths) for sym, paths in spec.replay_files},
        speed=spec.replay_speed,
        shift_to_now=spec.replay_shift_to_now,
        anchor_ms=spec.replay_anchor_ms,
        zone=spec.zone() or NY_CLOSE,
    )


@dataclass(frozen=True, slots=True)
class _Series:
    #: The symbol's ticks with ``time``/``time_msc`` in UTC (shifted), in true order.
    ticks: TickArray
    time_msc: np.ndarray[tuple[int], np.dtype[np.int64]]
    digits: int


def load_series(
    paths: Sequence[Path], zone: ServerTimeZone, *, skip_bad_rows: bool = False
) -> tuple[TickArray, int]:
    """The ticks of one symbol's files in UTC, in time order, overlaps taken once; and
    digits.

    Each file is converted on its own (``zone.to_utc_ms`` reads the autumn hour by the
    file's jump back), then the files are merged in UTC. A file whose times still go
    back in UTC was not recorded in ``zone``: :class:`ExportFormatError`, saying so.
    """
    parts: list[tuple[int, TickArray]] = []
    digits = 0
    for path in paths:
        reader = ExportReader(path, skip_bad_rows=skip_bad_rows)
        if reader.kind != "ticks":
            raise ExportFormatError(str(path), 1, "header", "a bar export cannot be replayed")
        chunks = list(reader)
        ticks = np.concatenate(chunks) if chunks else empty_ticks()
        if reader.report.bad_rows:
            log.warning("%s", reader.report.summary())
        digits = max(digits, reader.report.digits)
        if len(ticks):
            _to_utc(path, ticks, zone)
            parts.append((int(ticks["time_msc"][0]), ticks))
    parts.sort(key=lambda p: p[0])
    if not parts:
        return empty_ticks(), digits
    out = [parts[0][1]]
    for _, ticks in parts[1:]:
        # Continue after the newest tick so far, and after as many ticks at its very
        # millisecond as were taken already (the capture cursor's rule).
        tm = out[-1]["time_msc"]
        newest = int(tm[-1])
        seen = len(tm) - int(np.searchsorted(tm, newest, side="left"))
        first_at = int(np.searchsorted(ticks["time_msc"], newest, side="left"))
        after = int(np.searchsorted(ticks["time_msc"], newest, side="right"))
        new = ticks[first_at + min(after - first_at, seen) :]
        if len(new):
            out.append(new)
    return (out[0] if len(out) == 1 else np.concatenate(out)), digits


def _to_utc(path: Path, ticks: TickArray, zone: ServerTimeZone) -> None:
    """A file's ticks (server time, true order) to UTC in place; refused when the result
    is not in order (a step back the reader let pass where ``zone`` has no autumn hour)."""
    server = ticks["time_msc"].copy()
    utc = zone.to_utc_ms(server)
    back = np.flatnonzero(utc[1:] < utc[:-1])
    if len(back):
        at = _stamps(server[back[0] + 1 : back[0] + 2], True, " ")[0]
        raise ExportFormatError(
            str(path),
            0,
            "<TIME>",
            f"goes back in time at {at} where the server time zone {zone.key} has "
            "no autumn hour: set terminals[].server_time_zone to the zone it was recorded in",
        )
    ticks["time_msc"] = utc
    ticks["time"] = utc // 1000


def _served(ticks: TickArray, zone: ServerTimeZone) -> TickArray:
    """UTC ticks stamped in server time, in place (what a terminal of ``zone`` returns)."""
    server = zone.to_server_ms(ticks["time_msc"])
    ticks["time_msc"] = server
    ticks["time"] = server // 1000
    return ticks


class ReplayTerminal(SimulatedTerminal):
    """The ``MetaTrader5`` API over tick export files; see the module doc."""

    #: Files have no broker behind them: trade calls answer ``RES_E_UNSUPPORTED``.
    _trades = False

    def __init__(
        self,
        files: Mapping[str, Sequence[Path | str]],
        *,
        speed: float = 1.0,
        shift_to_now: bool = False,
        anchor_ms: int | None = None,
        skip_bad_rows: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        accounts: Mapping[int, str] | None = None,
        control_file: Path | str | None = None,
        server_time_zone: ServerTimeZone = NY_CLOSE,
    ) -> None:
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"replay speed must be a finite number >= 0, got {speed}")
        self.files = {sym: [Path(p) for p in paths] for sym, paths in files.items()}
        for sym, paths in self.files.items():
            for p in paths:
                if not p.exists():
                    raise FileNotFoundError(f"{sym}: replay file {p} does not exist")
                try:
                    check_regular_file(p)  # a FIFO would hang the worker, /dev/zero fill it
                except OSError as exc:
                    raise FileNotFoundError(
                        f"{sym}: replay file {p} cannot be read: {exc.strerror or exc}"
                    ) from None
                ExportReader(p)  # the header, now: a wrong file fails before any worker runs
        anchor = anchor_ms if anchor_ms is not None else now_msc(clock)
        self.plan = replay_plan(
            self.files,
            speed=speed,
            shift_to_now=shift_to_now,
            anchor_ms=anchor,
            zone=server_time_zone,
        )
        self._skip_bad_rows = skip_bad_rows
        self._series: dict[str, _Series] = {}
        # The simulated market underneath only holds the symbol names: rate 0 never
        # generates a tick; every data call is answered from the files below.
        profiles = {
            sym: SymbolProfile(
                name=sym,
                digits=5,
                point=1e-5,
                base_price=1.0,
                spread_points=0,
                volatility=0.0,
                tick_rate=0.0,
                path=f"Replay\\{sym}",
            )
            for sym in self.files
        }
        super().__init__(
            0,
            profiles=profiles,
            clock=clock,
            accounts=accounts,
            control_file=control_file,
            server_time_zone=server_time_zone,
            market_watch=tuple(self.files),  # the user's files: all in Market Watch
        )
        self._path = "replay"

    @classmethod
    def from_spec(cls, spec: TerminalSpec, *, clock: Clock = SYSTEM_CLOCK) -> ReplayTerminal:
        return cls(
            {sym: list(paths) for sym, paths in spec.replay_files},
            speed=spec.replay_speed,
            shift_to_now=spec.replay_shift_to_now,
            anchor_ms=spec.replay_anchor_ms,
            skip_bad_rows=spec.replay_skip_bad_rows,
            clock=clock,
            control_file=spec.control_file,
            server_time_zone=spec.zone() or NY_CLOSE,
        )

    # --- data --------------------------------------------------------------------------

    def _load(self, symbol: str) -> _Series | None:
        """The symbol's ticks (UTC, shifted), read on first use; None after a failure,
        with ``last_error`` saying which file and line."""
        series = self._series.get(symbol)
        if series is not None:
            return series
        try:
            ticks, digits = load_series(
                self.files[symbol], self.server_time_zone, skip_bad_rows=self._skip_bad_rows
            )
        except (OSError, ExportFormatError) as exc:
            self._error = (c.RES_E_FAIL, f"replay file: {exc}")
            return None
        shift = self.plan.shift_ms
        if shift:
            ticks["time_msc"] += shift
            ticks["time"] = ticks["time_msc"] // 1000
        ticks.flags.writeable = False
        series = _Series(ticks, ticks["time_msc"], digits)
        self._series[symbol] = series
        return series

    def _until(self) -> int:
        """Exclusive bound (UTC) of the tick times visible now."""
        limit = self.plan.visible_until(now_msc(self._clock))
        return limit if limit == _NEVER else limit + 1

    def _visible(self, series: _Series, from_msc: int, until: int) -> tuple[int, int]:
        tm = series.time_msc
        lo = int(np.searchsorted(tm, from_msc, side="left"))
        hi = int(np.searchsorted(tm, until, side="left"))
        return lo, max(lo, hi)

    def _copy(
        self, symbol: str, from_s: int, to_s: int | None, count: int, flags: int
    ) -> TickArray | None:
        """The files' ticks from server second ``from_s`` (to ``to_s``), stamped in server
        time; the seconds are read as the simulated terminal reads them (in the autumn
        hour ``from_s`` as the earlier pass, ``to_s`` as the later)."""
        series = self._load(symbol)
        if series is None:
            return None
        zone = self.server_time_zone
        until = self._live_until()
        if to_s is not None:
            until = min(until, zone.to_utc_s(to_s, later=True) * 1000 + 1)
        lo, hi = self._visible(series, zone.to_utc_s(from_s, later=False) * 1000, until)
        mask = COPY_MASKS[flags]
        if mask:
            part = series.ticks[lo:hi]
            out = part[(part["flags"] & np.uint32(mask)) != 0][:count]
        else:
            out = series.ticks[lo : min(hi, lo + count)]
        self._ok()
        return _served(np.array(out, dtype=TICK_DTYPE), zone)  # a fresh, writable copy

    # --- bars (app/terminal/sim_rates.py): all of them from the files' ticks --------

    def _exact_since_ms(self, symbol: str, live_until: int) -> int:
        firsts = [int(s.time_msc[0]) for s in self._series.values() if len(s.time_msc)]
        first = min(firsts, default=live_until)
        return first - first % 3_600_000

    def _rate_ticks(self, symbol: str, from_ms: int, until_ms: int) -> TickArray:
        series = self._load(symbol)
        if series is None:
            return np.zeros(0, dtype=TICK_DTYPE)
        lo, hi = self._visible(series, from_ms, min(until_ms, self._live_until()))
        return _served(np.array(series.ticks[lo:hi], dtype=TICK_DTYPE), self.server_time_zone)

    def _rate_point(self, symbol: str) -> float:
        series = self._load(symbol)
        return 10.0 ** -(series.digits if series is not None else 5)

    def _last(self, symbol: str) -> np.void | None:
        """The newest visible tick, stamped in server time."""
        series = self._load(symbol)
        if series is None:
            return None
        i = int(np.searchsorted(series.time_msc, self._live_until(), side="left")) - 1
        if i < 0:
            return None
        tick: np.void = _served(series.ticks[i : i + 1].copy(), self.server_time_zone)[0]
        return tick

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        if not self._ready("symbol_info_tick"):
            return None
        if symbol not in self._selected:
            self._fail(c.RES_E_NOT_FOUND)
            return None
        if not self._selected[symbol]:
            self._fail(c.RES_E_FAIL)
            return None
        tick = self._last(symbol)
        if tick is None:
            if symbol not in self._series:
                return None  # the file failed to load; last_error says why
            self._fail(c.RES_E_NOT_FOUND)
            return None
        self._ok()
        return Tick(*tick.tolist())

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        """Selecting a symbol reads its files (so a bad file fails the connect, clearly)."""
        if not super().symbol_select(symbol, enable):
            return False
        return not (enable and self._load(symbol) is None)

    def _symbol_info(self, symbol: str, at_msc: int) -> SymbolInfo:
        series = self._series.get(symbol)
        digits = series.digits if series is not None else 5
        point = 10.0**-digits
        tick = self._last(symbol) if series is not None else None
        bid = float(tick["bid"]) if tick is not None else 0.0
        ask = float(tick["ask"]) if tick is not None else 0.0
        last = float(tick["last"]) if tick is not None else 0.0
        fields = dict(SYMBOL_INFO_ZERO)
        fields.update(
            select=self._selected[symbol],
            visible=self._selected[symbol],
            time=int(tick["time"]) if tick is not None else 0,
            digits=digits,
            spread=round((ask - bid) / point) if tick is not None else 0,
            spread_float=True,
            trade_mode=4,
            bid=bid,
            bidhigh=bid,
            bidlow=bid,
            ask=ask,
            askhigh=ask,
            asklow=ask,
            last=last,
            lasthigh=last,
            lastlow=last,
            point=point,
            trade_tick_size=point,
            trade_contract_size=100_000.0,
            volume_min=0.01,
            volume_max=100.0,
            volume_step=0.01,
            description=f"Replay of {len(self.files[symbol])} file(s)",
            name=symbol,
            path=f"Replay\\{symbol}",
        )
        return SymbolInfo(**fields)
