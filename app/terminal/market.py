"""A deterministic simulated market: ticks as a pure function of (seed, symbol, time).

A broker's server history does not depend on who asked for what before, nor on how a
span was cut into requests; a simulated market that did would hide exactly the bugs the
capture pipeline must not have (gaps and duplicates at request boundaries). So nothing
here carries state from one request to the next except caches of values that are pure
functions themselves.

How the ticks of one symbol are defined:

* Every whole UTC second ``s`` draws its ticks from its own random stream (a Philox
  generator keyed by ``(seed, crc32(symbol))`` at counter block ``s``): a Poisson number
  of ticks at uniform milliseconds (so at high rates several ticks share a millisecond,
  as on a real feed) and per-tick noise. The streams are those of the installed numpy;
  processes compared with each other must share it.
* The mid price is a sum of value-noise octaves (1 ms to ~25 days) hashed from the
  absolute time, with amplitudes growing as ``sqrt(period)``: increments look like a
  random walk of the profile's volatility, yet the price at any millisecond is computed
  without looking at any other time.
* Per tick, a bid/ask bounce and a jittering spread are added, and prices are rounded to
  the symbol's points.
* A tick that changes nothing is not sent (a real server never sends one). The
  comparison runs against the previous generated tick within the same UTC hour; the
  first tick of an hour is always sent with every flag it could carry. Anchoring the
  comparison to absolute hours (instead of "the last N seconds") is what keeps the
  result independent of where a request starts.

Generation runs a whole block of seconds at once with numpy (a Python loop per second,
never per tick); the block result equals the per-second definition above exactly.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.terminal.constants import (
    TICK_FLAG_ASK,
    TICK_FLAG_BID,
    TICK_FLAG_BUY,
    TICK_FLAG_LAST,
    TICK_FLAG_SELL,
    TICK_FLAG_VOLUME,
)
from app.ticks import TICK_DTYPE, TickArray, empty_ticks

__all__ = ["DEFAULT_PROFILES", "Market", "SymbolProfile"]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    """How one simulated symbol looks: price level, precision, spread, activity."""

    name: str
    digits: int
    point: float
    base_price: float
    #: Typical spread in points; each tick's spread jitters around it (never below 1).
    spread_points: float
    #: Relative standard deviation of the mid price per sqrt(second).
    volatility: float
    #: Default number of generated quotes per second (somewhat fewer are sent, see
    #: :class:`Market`).
    tick_rate: float = 5.0
    description: str = ""
    currency_base: str = ""
    currency_profit: str = ""
    #: Exchange-style symbol: some ticks are deals that set ``last`` and ``volume``.
    has_last: bool = False
    #: Units per lot, for ``SymbolInfo.trade_contract_size``.
    contract_size: float = 100_000.0
    #: Folder in the terminal's symbol tree, for ``SymbolInfo.path``.
    path: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a symbol needs a name")
        if self.digits < 0 or self.point <= 0 or self.base_price <= 0:
            raise ValueError(f"{self.name}: digits, point and base_price must be positive")
        if self.spread_points < 0 or self.volatility < 0 or self.tick_rate < 0:
            raise ValueError(f"{self.name}: spread, volatility and tick rate cannot be negative")


def _fx(
    name: str, digits: int, base: float, *, spread: float, vol: float, rate: float, desc: str
) -> SymbolProfile:
    return SymbolProfile(
        name=name,
        digits=digits,
        point=10.0**-digits,
        base_price=base,
        spread_points=spread,
        volatility=vol,
        tick_rate=rate,
        description=desc,
        currency_base=name[:3],
        currency_profit=name[3:],
        path=f"Forex\\{name}",
    )


#: A retail FX/CFD broker's typical majors, gold and bitcoin. Volatilities are daily
#: ranges of recent years scaled to one second (EURUSD ~0.5 %/day -> 1.7e-5/sqrt(s)).
#: BTCUSD is a CFD at such brokers: quotes only, no exchange ``last``/volume.
DEFAULT_PROFILES: dict[str, SymbolProfile] = {
    "EURUSD": _fx("EURUSD", 5, 1.08500, spread=8, vol=1.7e-5, rate=20.0, desc="Euro vs US Dollar"),
    "GBPUSD": _fx(
        "GBPUSD",
        5,
        1.27000,
        spread=12,
        vol=2.0e-5,
        rate=16.0,
        desc="Great Britain Pound vs US Dollar",
    ),
    "USDJPY": _fx(
        "USDJPY", 3, 150.000, spread=12, vol=2.0e-5, rate=16.0, desc="US Dollar vs Japanese Yen"
    ),
    "XAUUSD": SymbolProfile(
        name="XAUUSD",
        digits=2,
        point=0.01,
        base_price=2000.00,
        spread_points=25,
        volatility=3.4e-5,
        tick_rate=12.0,
        description="Gold vs US Dollar",
        currency_base="XAU",
        currency_profit="USD",
        contract_size=100.0,
        path="Metals\\XAUUSD",
    ),
    "BTCUSD": SymbolProfile(
        name="BTCUSD",
        digits=2,
        point=0.01,
        base_price=60_000.00,
        spread_points=1800,
        volatility=1.0e-4,
        tick_rate=8.0,
        description="Bitcoin vs US Dollar",
        currency_base="BTC",
        currency_profit="USD",
        contract_size=1.0,
        path="Crypto\\BTCUSD",
    ),
}

# --- the mid price: value noise over absolute milliseconds ------------------------------

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_N_OCTAVES = 32  # periods 2**0 .. 2**31 ms: 1 ms to ~25 days
_SHIFTS = np.arange(_N_OCTAVES, dtype=np.int64)[:, None]
_CELL_MASKS = (np.int64(1) << _SHIFTS) - 1
_INV_PERIODS = 1.0 / (2.0 ** _SHIFTS.astype(np.float64))
#: Makes the variance of a 1000 ms increment of the octave sum 1 (measured numerically
#: over 4M random times for uniform(-0.5, 0.5) lattice values, amplitude sqrt(period)).
_INCREMENT_NORM = 18.245
_WEIGHTS = (np.sqrt(2.0 ** np.arange(_N_OCTAVES, dtype=np.float64)) / _INCREMENT_NORM)[None, :]
_EVAL_CHUNK = 8192  # points per vectorised evaluation, to bound temporaries (~2 MB each)


def _splitmix(value: int) -> int:
    z = (value + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _mix(z: U64) -> U64:
    """Splitmix64 finaliser, in place (uint64 arrays wrap silently, as wanted)."""
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _octave_keys(seed: int, symbol_id: int) -> U64:
    base = _splitmix((seed & _MASK64) ^ _splitmix(symbol_id))
    keys = [_splitmix(base ^ (k * _GOLDEN & _MASK64)) for k in range(_N_OCTAVES)]
    return np.array(keys, dtype=np.uint64)[:, None]


def _lattice(cells: I64, keys: U64) -> F64:
    z = cells.astype(np.uint64)
    z *= np.uint64(_GOLDEN)
    z += keys
    _mix(z)
    z >>= np.uint64(11)
    return z.astype(np.float64) * 2.0**-53 - 0.5


def _noise(t_msc: I64, keys: U64) -> F64:
    """Octave sum at absolute millisecond times: a random walk with unit variance/second."""
    out = np.empty(len(t_msc), dtype=np.float64)
    for lo in range(0, len(t_msc), _EVAL_CHUNK):
        t = t_msc[lo : lo + _EVAL_CHUNK][None, :]
        cells = t >> _SHIFTS
        frac = (t & _CELL_MASKS) * _INV_PERIODS
        v0 = _lattice(cells, keys)
        cells += 1
        v1 = _lattice(cells, keys)
        v1 -= v0
        v1 *= frac
        v0 += v1
        out[lo : lo + _EVAL_CHUNK] = (_WEIGHTS @ v0)[0]
    return out


# --- per-symbol generation --------------------------------------------------------------

#: The comparison that drops unchanged ticks restarts at every whole hour (see module doc).
_WINDOW_S = 3600
#: Expected ticks per generated block; bounds memory while amortising per-call overhead.
_BLOCK_TICKS = 65_536
_MAX_BLOCK_S = 3600
#: Seconds cached per symbol: a live poller re-reads the last one or two seconds.
_CACHE_SECONDS = 8
#: How far back :meth:`Market.last_tick` looks before concluding there is no tick.
_LAST_TICK_LOOKBACK_S = 3600
_P_TRADE = 0.35  # share of quotes of a has_last symbol that are deals


@dataclass(frozen=True, slots=True)
class _Raw:
    """Generated quotes of consecutive seconds, before unchanged ones are dropped."""

    t: I64
    bid: I64  # in points
    ask: I64
    trade: Bools | None = None  # has_last only
    buy: Bools | None = None
    volume: npt.NDArray[np.uint64] | None = None


@dataclass(frozen=True, slots=True)
class _Carry:
    """State left by the previous quote (and deal) in the current hour, if any."""

    bid: int | None = None
    ask: int | None = None
    last: int | None = None  # in points
    volume: int = 0


class _SymbolGen:
    def __init__(self, seed: int, profile: SymbolProfile, rate: float) -> None:
        self.profile = profile
        self.rate = rate
        self._seed = seed & _MASK64
        self._id = zlib.crc32(profile.name.encode("utf-8"))
        self._keys = _octave_keys(seed, self._id)
        self._price_pts = profile.base_price / profile.point
        self._bitgen = np.random.Philox(key=(self._id << 64) | self._seed)
        self._rng = np.random.Generator(self._bitgen)
        self._state = self._bitgen.state  # a fresh state: empty buffer, to reuse per second
        # Bid/ask bounce: uniform, std ~max(0.6 point, 12 % of the spread).
        self._bounce = max(0.6, 0.12 * profile.spread_points) * math.sqrt(3.0)
        # Spread jitter: uniform, std 15 % of the spread.
        self._jitter = 0.15 * profile.spread_points * math.sqrt(3.0)

    def block_seconds(self) -> int:
        return max(1, min(_MAX_BLOCK_S, int(_BLOCK_TICKS / max(self.rate, 1.0))))

    def raw(self, s0: int, s1: int) -> _Raw:
        """Quotes of seconds [s0, s1), each second from its own random stream."""
        has_last = self.profile.has_last
        rows = 6 if has_last else 3  # millisecond, bounce, spread[, deal?, side, volume]
        nsec = s1 - s0
        sizes = np.empty(nsec, dtype=np.int64)
        draws: list[F64] = []
        for i in range(nsec):
            self._seek(s0 + i)
            n = int(self._rng.poisson(self.rate))
            sizes[i] = n
            draws.append(self._rng.random(rows * n).reshape(rows, n))
        u = np.concatenate(draws, axis=1)
        # Which tick takes which draw is arbitrary; sorting the times alone is cheaper
        # than permuting every row, and equally a pure function of the second.
        t = np.repeat(np.arange(s0, s1, dtype=np.int64) * 1000, sizes)
        t += (u[0] * 1000).astype(np.int64)
        t.sort()
        if len(t):
            starts = np.flatnonzero(np.diff(t, prepend=t[0] - 1))
            t_busy = t[starts]
            reps = np.diff(starts, append=len(t))
            mid = self._price_pts * np.exp(self.profile.volatility * _noise(t_busy, self._keys))
            mid = np.repeat(mid, reps)
        else:
            mid = np.empty(0)
        spread = np.maximum(
            1.0, np.rint(self.profile.spread_points + self._jitter * (2 * u[2] - 1))
        )
        bid = np.rint(mid + self._bounce * (2 * u[1] - 1) - spread / 2).astype(np.int64)
        ask = bid + spread.astype(np.int64)
        if not has_last:
            return _Raw(t, bid, ask)
        volume = (1 + np.floor(u[5] * 10)).astype(np.uint64)
        return _Raw(t, bid, ask, trade=u[3] < _P_TRADE, buy=u[4] < 0.5, volume=volume)

    def _seek(self, s: int) -> None:
        """Point the generator at the stream of second ``s``: counter block (0, s, 0, 0).

        Philox is counter-based, so every second has its own stream addressed directly,
        without constructing a generator per second (the loop's main cost otherwise).
        """
        self._state["state"]["counter"] = np.array([0, s & _MASK64, 0, 0], dtype=np.uint64)
        self._bitgen.state = self._state

    def raw_backwards(self, s_last: int, s_first: int) -> Iterator[_Raw]:
        """Raw quotes of seconds ``s_last`` down to ``s_first``, in growing chunks.

        Each chunk is in time order; chunks come newest first. Growing chunks keep a
        search back over a quiet stretch linear in its length, and cheap when it is short.
        """
        size = 1
        hi = s_last + 1
        while hi > s_first and self.rate > 0:
            lo = max(s_first, hi - size)
            yield self.raw(lo, hi)
            hi = lo
            size = min(size * 4, _MAX_BLOCK_S)

    def carry_in(self, s: int, cached_prev: TickArray | None) -> _Carry:
        """The state the first quote of second ``s`` is compared against."""
        window_start = s - s % _WINDOW_S
        if s == window_start or self.rate == 0:
            return _Carry()
        has_last = self.profile.has_last
        if cached_prev is not None and len(cached_prev):
            # The last sent tick of s-1 already holds that state: a dropped quote equals
            # the one before it, and every deal is sent.
            tick = cached_prev[-1]
            deal = float(tick["last"]) > 0
            return _Carry(
                bid=self._pts(tick["bid"]),
                ask=self._pts(tick["ask"]),
                last=self._pts(tick["last"]) if deal else None,
                volume=int(tick["volume"]) if deal else 0,
            )
        bid = ask = last_pts = None
        volume = 0
        for r in self.raw_backwards(s - 1, window_start):
            if bid is None and len(r.t):
                bid, ask = int(r.bid[-1]), int(r.ask[-1])
            if has_last and last_pts is None and r.trade is not None and r.trade.any():
                i = int(np.flatnonzero(r.trade)[-1])
                last_pts = self._deal_price(r, i)
                volume = int(r.volume[i]) if r.volume is not None else 0
            if bid is not None and (not has_last or last_pts is not None):
                break
        return _Carry(bid=bid, ask=ask, last=last_pts, volume=volume)

    def generate(self, s0: int, s1: int, carry: _Carry) -> TickArray:
        """All sent ticks of seconds [s0, s1), ``carry`` being :meth:`carry_in` of ``s0``."""
        r = self.raw(s0, s1)
        n = len(r.t)
        if n == 0:
            return empty_ticks()
        sec = r.t // 1000
        win = sec // _WINDOW_S
        fresh = np.empty(n, dtype=np.bool_)  # no earlier quote to compare against
        fresh[0] = carry.bid is None
        np.not_equal(win[1:], win[:-1], out=fresh[1:])
        prev_bid = np.empty_like(r.bid)
        prev_bid[1:] = r.bid[:-1]
        prev_bid[0] = carry.bid if carry.bid is not None else 0
        prev_ask = np.empty_like(r.ask)
        prev_ask[1:] = r.ask[:-1]
        prev_ask[0] = carry.ask if carry.ask is not None else 0
        bid_changed = (r.bid != prev_bid) | fresh
        ask_changed = (r.ask != prev_ask) | fresh
        flags = np.where(bid_changed, np.uint32(TICK_FLAG_BID), np.uint32(0))
        flags |= np.where(ask_changed, np.uint32(TICK_FLAG_ASK), np.uint32(0))
        keep = bid_changed | ask_changed
        last_pts: I64 | None = None
        volume: npt.NDArray[np.uint64] | None = None
        if r.trade is not None and r.buy is not None and r.volume is not None:
            keep |= r.trade
            deal = np.uint32(TICK_FLAG_LAST | TICK_FLAG_VOLUME)
            flags |= np.where(r.trade, deal, np.uint32(0))
            flags |= np.where(r.trade & r.buy, np.uint32(TICK_FLAG_BUY), np.uint32(0))
            flags |= np.where(r.trade & ~r.buy, np.uint32(TICK_FLAG_SELL), np.uint32(0))
            last_pts, volume = self._carry_deals(r, win, carry)
        idx = np.flatnonzero(keep)
        out = np.empty(len(idx), dtype=TICK_DTYPE)
        t = r.t[idx]
        out["time"] = t // 1000
        out["bid"] = self._price(r.bid[idx])
        out["ask"] = self._price(r.ask[idx])
        out["time_msc"] = t
        out["flags"] = flags[idx]
        if last_pts is not None and volume is not None:
            out["last"] = np.where(last_pts[idx] > 0, self._price(last_pts[idx]), 0.0)
            out["volume"] = volume[idx]
            out["volume_real"] = volume[idx]
        else:
            out["last"] = 0.0
            out["volume"] = 0
            out["volume_real"] = 0.0
        return out

    def _carry_deals(self, r: _Raw, win: I64, carry: _Carry) -> tuple[I64, npt.NDArray[np.uint64]]:
        """``last``/``volume`` of every quote: those of the latest deal in the same hour."""
        assert r.trade is not None
        assert r.buy is not None
        assert r.volume is not None
        n = len(r.t)
        deal_price = np.where(r.buy, r.ask, r.bid)
        pos = np.where(r.trade, np.arange(n), -1)
        np.maximum.accumulate(pos, out=pos)
        safe = np.maximum(pos, 0)
        valid = (pos >= 0) & (win[safe] == win)
        first_window = win == win[0]
        carry_last = carry.last if carry.last is not None else 0
        last = np.where(valid, deal_price[safe], np.where(first_window, carry_last, 0))
        volume = np.where(
            valid, r.volume[safe], np.where(first_window, np.uint64(carry.volume), np.uint64(0))
        ).astype(np.uint64)
        return last.astype(np.int64), volume

    def _deal_price(self, r: _Raw, i: int) -> int:
        assert r.buy is not None
        return int(r.ask[i] if r.buy[i] else r.bid[i])

    def _price(self, pts: I64) -> F64:
        return np.round(pts * self.profile.point, self.profile.digits)

    def _pts(self, price: float) -> int:
        return round(float(price) / self.profile.point)


class Market:
    """Ticks of several symbols, each a pure function of ``(seed, symbol, time)``.

    ``rates`` overrides the profiles' ``tick_rate`` (generated quotes per second). The
    number of ticks actually sent is a little lower (quotes that change nothing are
    dropped: ~10 % for EURUSD, ~0 for BTCUSD), as on a real feed.

    Thread-safe; caches only pure values, so results never depend on call history.
    """

    def __init__(
        self,
        seed: int,
        profiles: Mapping[str, SymbolProfile],
        rates: Mapping[str, float] | None = None,
    ) -> None:
        rates = dict(rates or {})
        unknown = sorted(set(rates) - set(profiles))
        if unknown:
            raise ValueError(f"tick rates given for unknown symbols: {', '.join(unknown)}")
        for name, rate in rates.items():
            if not math.isfinite(rate) or rate < 0:
                raise ValueError(f"{name}: tick rate must be a finite number >= 0, got {rate}")
        self.seed = seed
        self._gens = {
            name: _SymbolGen(seed, profile, float(rates.get(name, profile.tick_rate)))
            for name, profile in profiles.items()
        }
        self._cache: dict[str, OrderedDict[int, TickArray]] = {n: OrderedDict() for n in profiles}
        self._lock = threading.RLock()

    def symbols(self) -> tuple[str, ...]:
        return tuple(self._gens)

    def profile(self, symbol: str) -> SymbolProfile:
        return self._gen(symbol).profile

    def rate(self, symbol: str) -> float:
        """Generated quotes per second for ``symbol``."""
        return self._gen(symbol).rate

    def ticks_range(self, symbol: str, from_msc: int, to_msc: int) -> TickArray:
        """Every tick with ``from_msc <= time_msc < to_msc``, oldest first (a fresh array)."""
        if to_msc <= from_msc:
            return empty_ticks()
        parts = list(self._blocks(symbol, from_msc, to_msc, self._gen(symbol).block_seconds()))
        return _concat(parts)

    def ticks_from(
        self, symbol: str, from_msc: int, count: int, until_msc: int, *, mask: int = 0
    ) -> TickArray:
        """The first ``count`` ticks with ``from_msc <= time_msc < until_msc``.

        With ``mask``, only ticks whose flags share a bit with it count and are returned
        (``COPY_TICKS_INFO``/``TRADE`` filtering). Generates block by block, growing, so a
        huge span with a small count stays cheap.
        """
        gen = self._gen(symbol)
        if count <= 0 or until_msc <= from_msc or gen.rate == 0:
            return empty_ticks()
        first_block = max(1, min(gen.block_seconds(), math.ceil(1.2 * count / gen.rate) + 1))
        parts: list[TickArray] = []
        have = 0
        for block in self._blocks(symbol, from_msc, until_msc, first_block):
            part = block[(block["flags"] & np.uint32(mask)) != 0] if mask else block
            if have + len(part) >= count:
                parts.append(part[: count - have])
                break
            parts.append(part)
            have += len(part)
        return _concat(parts)

    def last_tick(self, symbol: str, at_msc: int) -> np.void | None:
        """The latest tick with ``time_msc < at_msc`` (looking back at most an hour)."""
        gen = self._gen(symbol)
        s_last = (at_msc - 1) // 1000
        floor = s_last - _LAST_TICK_LOOKBACK_S + 1
        while s_last >= floor:
            # Find the newest second with a generated quote, then send-filter only that one.
            with self._lock:
                s_busy = next(
                    (int(r.t[-1]) // 1000 for r in gen.raw_backwards(s_last, floor) if len(r.t)),
                    None,
                )
            if s_busy is None:
                return None
            ticks = self._second(symbol, s_busy)
            end = int(np.searchsorted(ticks["time_msc"], at_msc, side="left"))
            if end:
                return ticks[end - 1].copy()  # type: ignore[no-any-return]
            s_last = s_busy - 1  # every quote of that second repeated the one before
        return None

    # --- internals -----------------------------------------------------------------------

    def _gen(self, symbol: str) -> _SymbolGen:
        try:
            return self._gens[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}") from None

    def _blocks(
        self, symbol: str, from_msc: int, until_msc: int, first_block: int
    ) -> Iterator[TickArray]:
        """Ticks in [from_msc, until_msc) as consecutive, ordered chunks (possibly views)."""
        gen = self._gen(symbol)
        s, s_end = from_msc // 1000, (until_msc - 1) // 1000 + 1
        size, max_size = first_block, gen.block_seconds()
        while s < s_end:
            e = min(s_end, s + size)
            if e - s <= _CACHE_SECONDS // 2:  # the live case: through the per-second cache
                ticks = _concat_views([self._second(symbol, x) for x in range(s, e)])
            else:
                with self._lock:
                    prev = self._cache[symbol].get(s - 1)
                    ticks = gen.generate(s, e, gen.carry_in(s, prev))
            if s * 1000 < from_msc or e * 1000 > until_msc:
                times = ticks["time_msc"]
                lo = int(np.searchsorted(times, from_msc, side="left"))
                hi = int(np.searchsorted(times, until_msc, side="left"))
                ticks = ticks[lo:hi]
            yield ticks
            s = e
            size = min(max_size, size * 2)

    def _second(self, symbol: str, s: int) -> TickArray:
        """The ticks of one second, cached (the caller must not modify them)."""
        with self._lock:
            cache = self._cache[symbol]
            hit = cache.get(s)
            if hit is not None:
                cache.move_to_end(s)
                return hit
            gen = self._gens[symbol]
            ticks = gen.generate(s, s + 1, gen.carry_in(s, cache.get(s - 1)))
            ticks.flags.writeable = False
            cache[s] = ticks
            if len(cache) > _CACHE_SECONDS:
                cache.popitem(last=False)
            return ticks


def _concat_views(parts: list[TickArray]) -> TickArray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _concat(parts: list[TickArray]) -> TickArray:
    """One fresh, writable array: callers may keep and modify what they get."""
    if not parts:
        return empty_ticks()
    if len(parts) == 1:
        return parts[0].copy()
    return np.concatenate(parts)
