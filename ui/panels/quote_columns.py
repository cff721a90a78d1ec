"""Market Watch's column widths: every header whole, prices readable, at any dock width.

Why a module of its own: a header label is drawn by the style inside its *label rect* (the
section minus the header margins on both sides, minus the sort arrow's room on the sorted
column), and Qt clips what does not fit — a right-aligned "Spread" in a narrow section was
drawn as "read", "Chg %" as "hg %", under a real X server whose fonts are not the
offscreen platform's. So each column has two widths measured from the fonts in use:

* its *ideal*: the widest sample cell text (a 5-digit price, a time with milliseconds)
  or its header, whichever is wider;
* its *floor*: the header label whole, and a price with eight characters.

When the dock is narrower than the ideals the price columns shrink towards their floors
in proportion; when even the floors do not fit, whole columns leave the board in a fixed
order (Ticks/s, Low, High, Chg %, Spread: MT5's own default board is Symbol, Bid, Ask)
instead of each being squeezed to "1…". Symbol, Bid, Ask and Time always stay; in the
narrowest docks Time gives up its milliseconds (elided), never its seconds. The Symbol
header's tooltip names the columns left out; widening the dock brings them back. Any
header still too narrow (a user-dragged section) is elided ("Spr…"), never clipped, and
says the rest in its tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QFontMetrics, QPainter
from PySide6.QtWidgets import (
    QHeaderView,
    QProxyStyle,
    QStyle,
    QStyleFactory,
    QStyleOption,
    QStyleOptionHeader,
    QTableView,
    QWidget,
)

from ui.panels.quotes import (
    ASK,
    BID,
    CHANGE,
    COLUMNS,
    HIGH,
    LOW,
    SPREAD,
    SYMBOL,
    TIME,
    TPS,
    QuoteModel,
)

#: The optional columns, most wanted first: the last ones leave a narrow board first.
PRIORITY = (BID, ASK, SPREAD, CHANGE, HIGH, LOW, TPS)
#: Widest cell texts each column is sized for (ideal), in the fixed font for numbers.
_IDEAL_SAMPLES = {
    SYMBOL: "XAUUSD.pro",
    BID: "00000.00000",
    ASK: "00000.00000",
    SPREAD: "0000",
    HIGH: "00000.00000",
    LOW: "00000.00000",
    CHANGE: "+00.00%",
    TIME: "00:00:00.000",
    TPS: "000.0",
}
#: Narrowest readable cell texts (floor): "61433.48", "152.167", "-0.23%".
_FLOOR_SAMPLES = {BID: "00000.00", ASK: "00000.00", HIGH: "00000.00", LOW: "00000.00"}
#: Room around a cell's text (the item's margins and a little air).
_CELL_PAD = 12
#: Slack for the style's rounding of the label rect (a grid line, sub-pixel advances).
_HEADER_SLACK = 3


class HeaderStyle(QProxyStyle):
    """Fusion draws a sorted section's label in a rect that runs under the sort arrow:
    a right-aligned "Bid" had the arrow over its "d". Here the label ends a margin
    before the arrow (the rest of the drawing is Fusion's)."""

    def __init__(self) -> None:
        super().__init__(QStyleFactory.create("Fusion"))
        self._arrow_left: int | None = None

    def drawControl(  # noqa: N802 - Qt's name
        self,
        element: QStyle.ControlElement,
        option: QStyleOption,
        painter: QPainter,
        widget: QWidget | None = None,
    ) -> None:
        header = option if isinstance(option, QStyleOptionHeader) else None
        if element is QStyle.ControlElement.CE_Header and header is not None:
            self._arrow_left = None
            if header.sortIndicator is not QStyleOptionHeader.SortIndicator.None_:
                arrow = QStyle.SubElement.SE_HeaderArrow
                rect = self.subElementRect(arrow, option, widget)  # type: ignore[arg-type]
                self._arrow_left = rect.left()
            try:
                super().drawControl(element, option, painter, widget)
            finally:
                self._arrow_left = None
            return
        if element is QStyle.ControlElement.CE_HeaderLabel and self._arrow_left is not None:
            margin = self.pixelMetric(QStyle.PixelMetric.PM_HeaderMargin, option, widget)
            rect = option.rect
            if rect.right() >= self._arrow_left - margin:
                rect.setRight(self._arrow_left - margin - 1)
                option.rect = rect  # the style's own copy for this label: changed in place
        super().drawControl(element, option, painter, widget)


class ColumnFitter:
    """Sizes the board's columns to the viewport: :meth:`fit` on every resize."""

    def __init__(self, table: QTableView, model: QuoteModel) -> None:
        self.table = table
        self.model = model
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        # Qt's header default is ElideNone: a label too wide was clipped ("read").
        header.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.style = HeaderStyle()  # kept: the header does not own a style set on it
        header.setStyle(self.style)
        header.sortIndicatorChanged.connect(lambda _c, _o: self.fit())
        self.fixed = QFontMetrics(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.plain = QFontMetrics(table.font())
        self.ideal: dict[int, int] = {}
        self.floor: dict[int, int] = {}
        #: Columns left out for lack of room at the last fit.
        self.left_out: tuple[int, ...] = ()
        self._time_floor = 0
        self.measure()

    # ------------------------------------------------------------------ measuring
    def header_need(self, col: int) -> int:
        """Width in which the header's label is drawn whole (sort arrow included when
        this column is the sorted one)."""
        header = self.table.horizontalHeader()
        style = header.style()
        margin = style.pixelMetric(QStyle.PixelMetric.PM_HeaderMargin, None, header)
        label = QFontMetrics(header.font()).horizontalAdvance(COLUMNS[col])
        # The label rect is the section less a margin each side, and the text sits a
        # margin inside it again.
        need = label + 4 * margin + _HEADER_SLACK
        if header.isSortIndicatorShown() and header.sortIndicatorSection() == col:
            height = max(header.height(), header.sizeHint().height())
            need += height // 2 + 2 * margin
        return need

    def measure(self) -> None:
        """Ideal and floor widths from the fonts in use (again after a font change)."""
        for col, sample in _IDEAL_SAMPLES.items():
            metrics = self.plain if col == SYMBOL else self.fixed
            cell = metrics.horizontalAdvance(sample) + _CELL_PAD
            self.ideal[col] = max(cell, self.header_need(col))
            floor = _FLOOR_SAMPLES.get(col)
            cell_floor = self.fixed.horizontalAdvance(floor) + _CELL_PAD if floor else 0
            self.floor[col] = max(cell_floor, self.header_need(col))
        self._time_floor = min(
            self.ideal[TIME], self.fixed.horizontalAdvance("00:00:00.") + _CELL_PAD
        )
        row_height = max(self.fixed.height(), self.plain.height()) + 6
        self.table.verticalHeader().setDefaultSectionSize(row_height)

    def widen_time(self, width: int) -> None:
        """The Time column's text needs ``width`` (measured on the first quotes)."""
        self.ideal[TIME] = max(self.ideal[TIME], width)
        self.fit()

    # ------------------------------------------------------------------ fitting
    def fit(self) -> None:
        """Widths (and the columns shown) for the viewport's current width."""
        if not self.ideal:
            return
        header = self.table.horizontalHeader()
        for col in (SYMBOL, *PRIORITY):  # the sort arrow's room moves with the sort
            self.floor[col] = max(self.floor[col], self.header_need(col))
            self.ideal[col] = max(self.ideal[col], self.floor[col])
        width = self.table.viewport().width()
        symbol = self.ideal[SYMBOL]
        if width < sum(self.ideal.values()):  # a plain name ("XAUUSD") stays readable
            short = self.plain.horizontalAdvance("XAUUSD") + _CELL_PAD
            symbol = max(min(symbol, short), self.header_need(SYMBOL))
        room = width - symbol - self.ideal[TIME]
        shown = list(PRIORITY)
        while len(shown) > 2 and sum(self.floor[c] for c in shown) > room:
            shown.pop()  # the least wanted column leaves first
        floors = sum(self.floor[c] for c in shown)
        time = self.ideal[TIME]
        if floors > room:  # very narrow: the milliseconds go ("05:00:30…"), never the seconds
            give = min(time - self._time_floor, floors - room)
            time, room = time - give, room + give
        ideals = sum(self.ideal[c] for c in shown)
        share = 1.0 if room >= ideals else max(room - floors, 0) / max(ideals - floors, 1)
        left_out = tuple(sorted(c for c in PRIORITY if c not in shown))  # board order
        for col in PRIORITY:
            hidden = col in left_out
            if header.isSectionHidden(col) != hidden:
                header.setSectionHidden(col, hidden)
            if not hidden:
                f, i = self.floor[col], self.ideal[col]
                header.resizeSection(col, f + int((i - f) * share))
        header.resizeSection(TIME, time)
        header.resizeSection(SYMBOL, symbol)
        if left_out != self.left_out:
            self.left_out = left_out
            self.model.set_left_out(tuple(COLUMNS[c] for c in left_out))


__all__ = ["PRIORITY", "ColumnFitter", "HeaderStyle"]
