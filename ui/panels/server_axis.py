"""The chart's time axis in the server's time, as MT5 draws it.

pyqtgraph's ``DateAxisItem`` labels timestamps in the machine's *local* time unless
given ``utcOffset`` (seconds west of UTC, the sign of ``time.timezone``). The chart keeps
its x values in UTC seconds (the project's rule: UTC inside) and sets the offset of the
symbol's server zone at the newest tick, so labels read as the terminal's chart does.
A window spanning a daylight-saving switch labels both sides with the offset at its
newest tick (windows are minutes long; the switches are on quiet Sunday mornings).
"""

from __future__ import annotations

import datetime as dt

import pyqtgraph as pg

from app.servertime import ServerTimeZone, format_offset


class ServerDateAxis(pg.DateAxisItem):  # type: ignore[misc]
    """A date axis labelled in a server zone's time (UTC while the zone is unknown)."""

    def __init__(self, orientation: str = "bottom") -> None:
        super().__init__(orientation=orientation, utcOffset=0)
        self.zone: ServerTimeZone | None = None
        self.offset_s = 0

    def set_zone(self, zone: ServerTimeZone | None, at_utc_s: float) -> bool:
        """Label in ``zone`` with its offset at ``at_utc_s``; True when the labels change."""
        offset = zone.offset_s(at_utc_s) if zone is not None else 0
        if zone == self.zone and offset == self.offset_s:
            return False
        self.zone, self.offset_s = zone, offset
        self.utcOffset = -offset
        self.setToolTip(self.describe(at_utc_s))
        self.picture = None  # the cached labels are stale
        self.update()
        return True

    def describe(self, at_utc_s: float) -> str:
        """What the labels mean, with UTC's and the machine's local offset next to them."""
        local = dt.datetime.fromtimestamp(at_utc_s, dt.UTC).astimezone()
        local_off = local.utcoffset()
        local_s = int(local_off.total_seconds()) if local_off is not None else 0
        if self.zone is None:
            head = "Axis in UTC: the server's time zone is not known yet (server time unknown)"
        else:
            head = f"Axis in server time: {self.zone.key}, {format_offset(self.offset_s)}"
        return (
            f"{head}\nUTC is GMT\nlocal time here: {local.strftime('%Z')}, {format_offset(local_s)}"
        )
