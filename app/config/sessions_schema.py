"""The ``sessions`` section of the settings: trading hours per class, symbol and holiday.

Kept apart from :mod:`app.config.schema` because it is a schema of its own (hours,
days, holidays, each checked to one readable line) that only turns into the
:class:`~app.sessions.SessionBook` of :mod:`app.sessions`; the rest of the settings
never looks inside it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from app.config.section import Section
from app.sessions import (
    DEFAULT_CLASS_HOURS,
    SYMBOL_CLASSES,
    Holiday,
    SessionBook,
    WeeklySchedule,
    parse_days,
    parse_hhmm,
)

__all__ = ["HolidayConfig", "SessionHoursConfig", "SessionsConfig"]


class SessionHoursConfig(Section):
    days: str = Field(description="Weekdays: 'Mon', a range 'Mon-Fri' or a list 'Sat,Sun'.")
    open: str = Field(description="Opening time in server time, HH:MM.")
    close: str = Field(description="Closing time in server time, HH:MM (24:00: end of day).")

    @field_validator("days")
    @classmethod
    def _days(cls, v: str) -> str:
        parse_days(v)
        return v

    @field_validator("open", "close")
    @classmethod
    def _time(cls, v: str) -> str:
        parse_hhmm(v)
        return v

    @model_validator(mode="after")
    def _ordered(self) -> SessionHoursConfig:
        if parse_hhmm(self.open) >= parse_hhmm(self.close):
            raise ValueError(f"{self.days} {self.open}-{self.close}: it must open before it closes")
        return self

    def triple(self) -> tuple[str, str, str]:
        return (self.days, self.open, self.close)


def _hours(cls_name: str) -> list[SessionHoursConfig]:
    return [
        SessionHoursConfig(days=d, open=o, close=c) for d, o, c in DEFAULT_CLASS_HOURS[cls_name]
    ]


class HolidayConfig(Section):
    date: dt.date = Field(description="The day, in server time (YYYY-MM-DD).")
    open: str | None = Field(None, description="Special opening time, HH:MM; empty: closed.")
    close: str | None = Field(None, description="Special closing time, HH:MM; empty: closed.")
    symbols: list[str] = Field(
        default_factory=list,
        description="Classes ('forex', 'metals', 'crypto') or symbols it applies to; empty: all.",
    )

    @model_validator(mode="after")
    def _hours_pair(self) -> HolidayConfig:
        if (self.open is None) != (self.close is None):
            raise ValueError(f"holiday {self.date}: give both open and close, or neither")
        if self.open is not None and self.close is not None:
            o, c = parse_hhmm(self.open), parse_hhmm(self.close)
            if o >= c:
                raise ValueError(f"holiday {self.date}: it must open before it closes")
        return self

    def holiday(self) -> Holiday:
        if self.open is None or self.close is None:
            return Holiday(self.date)
        return Holiday(self.date, ((parse_hhmm(self.open), parse_hhmm(self.close)),))


class SessionsConfig(Section):
    enabled: bool = Field(
        True,
        description="Know when markets trade: no 'no tick' alert and 'closed' in the Market "
        "Watch outside a session. Off: every market counts as open 24/7.",
    )
    forex: list[SessionHoursConfig] = Field(
        default_factory=lambda: _hours("forex"),
        description="FX hours in server time (a ny-close broker: Mon 00:00 - Fri 23:57).",
    )
    metals: list[SessionHoursConfig] = Field(
        default_factory=lambda: _hours("metals"),
        description="Metals hours in server time (Mon-Fri 01:00-23:57, a daily break).",
    )
    crypto: list[SessionHoursConfig] = Field(
        default_factory=lambda: _hours("crypto"), description="Crypto hours (24/7)."
    )
    symbols: dict[str, Literal["forex", "metals", "crypto"] | list[SessionHoursConfig]] = Field(
        default_factory=dict,
        description="Per symbol: a class whose hours it keeps, or hours of its own. Symbols "
        "not listed take their class from the terminal's symbol path or their name.",
    )
    holidays: list[HolidayConfig] = Field(
        default_factory=list, description="Days with other hours than the weekly ones."
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _one_line_per_symbol(cls, v: Any) -> Any:
        """Check each value as a class name *or* hours, so a mistake reads as one line
        (the union would report both readings)."""
        if not isinstance(v, dict):
            return v
        for sym, value in v.items():
            if isinstance(value, str):
                if value not in SYMBOL_CLASSES:
                    raise ValueError(f"{sym}: {value!r} is not one of {', '.join(SYMBOL_CLASSES)}")
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    try:
                        SessionHoursConfig.model_validate(item)
                    except ValidationError as exc:
                        err = exc.errors()[0]
                        msg = str(err["msg"]).removeprefix("Value error, ")
                        raise ValueError(f"{sym}[{i}]: {msg}") from None
            else:
                raise ValueError(f"{sym}: give a class name or a list of hours")
        return v

    def book(self) -> SessionBook:
        """The schedules as :mod:`app.sessions` reads them."""

        def holidays_of(name: str) -> list[Holiday]:
            return [h.holiday() for h in self.holidays if not h.symbols or name in h.symbols]

        weekly = {c: [h.triple() for h in getattr(self, c)] for c in SYMBOL_CLASSES}
        classes = tuple((c, WeeklySchedule.of(weekly[c], holidays_of(c))) for c in SYMBOL_CLASSES)
        symbols = tuple(
            (sym, WeeklySchedule.of(weekly[v], holidays_of(v)))
            if isinstance(v, str)
            else (sym, WeeklySchedule.of([h.triple() for h in v], holidays_of("")))
            for sym, v in self.symbols.items()
        )
        named = sorted({n for h in self.holidays for n in h.symbols} - set(SYMBOL_CLASSES))
        own = tuple((n, tuple(h.holiday() for h in self.holidays if n in h.symbols)) for n in named)
        return SessionBook(classes, symbols, own)
