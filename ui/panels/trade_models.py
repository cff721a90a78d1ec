"""Table models of the Trade tab (open positions, pending orders) and the History tab
(deals, orders): rows are the terminal's own named tuples, keyed by ticket.

Rows are updated in place when the same tickets come back in the same order (live P/L
changes every frame: ``dataChanged`` for the rows that changed, so the selection and the
scroll position stay put), and reset otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHeaderView, QTableView, QWidget

from app.trading.view import (
    DEAL_ENTRY_TEXT,
    DEAL_TYPE_TEXT,
    ORDER_STATE_TEXT,
    POSITION_TYPE_BUY,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradingSnapshot,
)
from ui.panels.base import Panel
from ui.panels.table import ColumnsModel, ModelIndex, setup_table_view
from ui.theme import DARK, Theme
from ui.trade_text import (
    digits_of,
    money,
    order_type_text,
    position_profit,
    profit_colour,
    server_time_text,
    stop_text,
)

#: The ticket of a row (for actions and tests).
TICKET_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2

Cell = tuple[str, object]  # (text, sort key)


class TicketRowsModel(ColumnsModel):
    """Rows of named tuples with a ``ticket``; subclasses say how a cell reads."""

    columns: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Column whose text is coloured by sign (profit), or -1.
    signed_column: ClassVar[int] = -1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []
        self._cells: list[list[Cell]] = []
        self._signs: list[float] = []
        self.theme: Theme = DARK

    # -- what subclasses provide ---------------------------------------------------------
    def cells(self, row: Any, snap: TradingSnapshot | None) -> tuple[list[Cell], float]:
        """The row's cells and the value whose sign colours :attr:`signed_column`."""
        raise NotImplementedError

    def tooltip(self, row: Any, column: int) -> str:
        return ""

    @staticmethod
    def key(row: Any) -> object:
        """What identifies a row from one snapshot to the next."""
        return row.ticket

    # -- updating --------------------------------------------------------------------------
    def update(self, rows: Sequence[Any], snap: TradingSnapshot | None) -> None:
        built = [self.cells(r, snap) for r in rows]
        same = [self.key(r) for r in rows] == [self.key(r) for r in self._rows]
        if not same:
            self.beginResetModel()
        old_cells = self._cells
        self._rows = list(rows)
        self._cells = [cells for cells, _ in built]
        self._signs = [sign for _, sign in built]
        if not same:
            self.endResetModel()
            return
        last = len(self.columns) - 1
        for i, cells in enumerate(self._cells):
            if cells != old_cells[i]:
                self.dataChanged.emit(self.index(i, 0), self.index(i, last))

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        if self._rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._rows) - 1, len(self.columns) - 1)
            )

    def row(self, index: int) -> Any:
        return self._rows[index]

    def rows(self) -> list[Any]:
        return list(self._rows)

    # -- Qt model API ------------------------------------------------------------------------
    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cells[row][col][0]
        if role == SORT_ROLE:
            return self._cells[row][col][1]
        if role == TICKET_ROLE:
            return self.key(self._rows[row])
        if role == Qt.ItemDataRole.TextAlignmentRole and col in self.right_aligned:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and col == self.signed_column:
            colour = profit_colour(self._signs[row], self.theme)
            return QColor(colour) if colour else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(self._rows[row], col) or None
        return None


def _price(value: float, digits: int) -> Cell:
    return (f"{value:.{digits}f}", value)


class PositionsModel(TicketRowsModel):
    columns = (
        ("Ticket", "The position's ticket at the terminal"),
        ("Time", "When the position was opened (server time)"),
        ("Type", "buy or sell"),
        ("Volume", "Lots"),
        ("Symbol", "Symbol"),
        ("Price", "Open price"),
        ("S / L", "Stop loss (empty: none)"),
        ("T / P", "Take profit (empty: none)"),
        ("Price", "Current price the position would close at (bid for buy, ask for sell)"),
        ("Profit", "Profit at the latest captured price, in the account currency"),
    )
    signed_column = 9

    right_aligned = frozenset({0, 3, 5, 6, 7, 8, 9})

    def cells(self, row: Any, snap: TradingSnapshot | None) -> tuple[list[Cell], float]:
        p: TradePosition = row
        digits = digits_of(snap, p.symbol, p.price_open, p.price_current)
        profit = position_profit(snap, p) if snap is not None else p.profit
        current = p.price_current
        if snap is not None and p.symbol in snap.prices:
            bid, ask = snap.prices[p.symbol]
            current = bid if p.type == POSITION_TYPE_BUY else ask
        return [
            (str(p.ticket), p.ticket),
            (server_time_text(p.time), p.time_msc),
            (order_type_text(p.type), p.type),
            (f"{p.volume:g}", p.volume),
            (p.symbol, p.symbol),
            _price(p.price_open, digits),
            (stop_text(p.sl, digits), p.sl),
            (stop_text(p.tp, digits), p.tp),
            _price(current, digits),
            (money(profit), profit),
        ], profit

    def tooltip(self, row: Any, column: int) -> str:
        p: TradePosition = row
        lines = [f"#{p.ticket} {order_type_text(p.type)} {p.volume:g} {p.symbol}"]
        if p.comment:
            lines.append(f"Comment: {p.comment}")
        if p.swap:
            lines.append(f"Swap: {money(p.swap)}")
        lines.append("Double-click: close or modify S/L-T/P · Delete: close")
        return "\n".join(lines)


class OrdersModel(TicketRowsModel):
    columns = (
        ("Ticket", "The pending order's ticket at the terminal"),
        ("Time", "When the order was placed (server time)"),
        ("Type", "buy limit, sell limit, buy stop, sell stop"),
        ("Volume", "Lots"),
        ("Symbol", "Symbol"),
        ("Price", "The price the order triggers at"),
        ("S / L", "Stop loss (empty: none)"),
        ("T / P", "Take profit (empty: none)"),
        ("Price", "Current price"),
        ("State", "The order's state at the terminal"),
    )

    right_aligned = frozenset({0, 3, 5, 6, 7, 8})

    def cells(self, row: Any, snap: TradingSnapshot | None) -> tuple[list[Cell], float]:
        o: TradeOrder = row
        digits = digits_of(snap, o.symbol, o.price_open, o.price_current)
        return [
            (str(o.ticket), o.ticket),
            (server_time_text(o.time_setup), o.time_setup_msc),
            (order_type_text(o.type), o.type),
            (f"{o.volume_current:g} / {o.volume_initial:g}", o.volume_current),
            (o.symbol, o.symbol),
            _price(o.price_open, digits),
            (stop_text(o.sl, digits), o.sl),
            (stop_text(o.tp, digits), o.tp),
            _price(o.price_current, digits),
            (ORDER_STATE_TEXT.get(o.state, str(o.state)), o.state),
        ], 0.0

    def tooltip(self, row: Any, column: int) -> str:
        o: TradeOrder = row
        return f"#{o.ticket} {o.comment}\nDouble-click or Delete: cancel the order"


class DealsModel(TicketRowsModel):
    columns = (
        ("Time", "When the deal was made (server time)"),
        ("Deal", "The deal's ticket"),
        ("Order", "The order that made it"),
        ("Symbol", "Symbol (empty for balance operations)"),
        ("Type", "buy, sell, balance…"),
        ("Direction", "in: opens, out: closes"),
        ("Volume", "Lots"),
        ("Price", "Fill price"),
        ("Commission", "Commission charged"),
        ("Swap", "Swap"),
        ("Profit", "Profit of a closing deal, or the amount of a balance operation"),
        ("Comment", "The deal's comment (tc:… marks this application's orders)"),
    )
    signed_column = 10

    right_aligned = frozenset({1, 2, 6, 7, 8, 9, 10})

    def cells(self, row: Any, snap: TradingSnapshot | None) -> tuple[list[Cell], float]:
        d: TradeDeal = row
        digits = digits_of(snap, d.symbol, d.price)
        price = _price(d.price, digits) if d.symbol else ("", 0.0)
        return [
            (server_time_text(d.time), d.time_msc),
            (str(d.ticket), d.ticket),
            (str(d.order) if d.order else "", d.order),
            (d.symbol, d.symbol),
            (DEAL_TYPE_TEXT.get(d.type, str(d.type)), d.type),
            (DEAL_ENTRY_TEXT.get(d.entry, "") if d.symbol else "", d.entry),
            (f"{d.volume:g}" if d.symbol else "", d.volume),
            price,
            (money(d.commission), d.commission),
            (money(d.swap), d.swap),
            (money(d.profit), d.profit),
            (d.comment, d.comment),
        ], d.profit


class HistoryOrdersModel(TicketRowsModel):
    columns = (
        ("Open time", "When the order was placed (server time)"),
        ("Order", "The order's ticket"),
        ("Symbol", "Symbol"),
        ("Type", "Order type"),
        ("Volume", "Filled / requested lots"),
        ("Price", "Order price"),
        ("S / L", "Stop loss"),
        ("T / P", "Take profit"),
        ("Time", "When it was filled, cancelled or expired (server time)"),
        ("State", "filled, canceled, rejected, expired…"),
        ("Comment", "The order's comment"),
    )

    right_aligned = frozenset({1, 4, 5, 6, 7})

    def cells(self, row: Any, snap: TradingSnapshot | None) -> tuple[list[Cell], float]:
        o: TradeOrder = row
        digits = digits_of(snap, o.symbol, o.price_open, o.price_current)
        filled = o.volume_initial - o.volume_current
        return [
            (server_time_text(o.time_setup), o.time_setup_msc),
            (str(o.ticket), o.ticket),
            (o.symbol, o.symbol),
            (order_type_text(o.type), o.type),
            (f"{filled:g} / {o.volume_initial:g}", o.volume_initial),
            _price(o.price_open or o.price_current, digits),
            (stop_text(o.sl, digits), o.sl),
            (stop_text(o.tp, digits), o.tp),
            (server_time_text(o.time_done), o.time_done_msc),
            (ORDER_STATE_TEXT.get(o.state, str(o.state)), o.state),
            (o.comment, o.comment),
        ], 0.0


def tickets_of(rows: Sequence[NamedTuple]) -> tuple[int, ...]:
    return tuple(int(getattr(r, "ticket", 0)) for r in rows)


def selected_tickets(
    indexes: Sequence[QModelIndex], map_to_source: Callable[[QModelIndex], QModelIndex]
) -> list[int]:
    seen: list[int] = []
    for index in indexes:
        ticket = map_to_source(index).data(TICKET_ROLE)
        if isinstance(ticket, int) and ticket not in seen:
            seen.append(ticket)
    return seen


def trade_table(
    panel: QWidget, model: TicketRowsModel, name: str, sort: tuple[int, Qt.SortOrder]
) -> tuple[QTableView, QSortFilterProxyModel]:
    """A sortable read-only view of ``model`` (sorted by each cell's value, not its text),
    columns sized by hand, the last one stretched."""
    proxy = QSortFilterProxyModel(panel)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    view = QTableView(panel)
    view.setObjectName(name)
    header = setup_table_view(view, proxy, sort=sort)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    return view, proxy


def select_key(view: QTableView, key: object) -> bool:
    """Select (only) the row whose :meth:`TicketRowsModel.key` is ``key``; False when no
    row has it. Not ``selectRow``: that reads the keyboard's modifiers (a held Ctrl
    toggles instead of selecting)."""
    model = view.model()
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        if index.data(TICKET_ROLE) == key:
            flags = QItemSelectionModel.SelectionFlag.ClearAndSelect
            view.selectionModel().select(index, flags | QItemSelectionModel.SelectionFlag.Rows)
            view.setCurrentIndex(index)
            return True
    return False


class TradingPanel(Panel):
    """A panel drawn from the session's :class:`TradingSnapshot`, only when its version
    moved (``draw``); tests hand snapshots to :meth:`render_trading` directly."""

    _version: int | None = -1

    def refresh(self) -> None:
        self.render_trading(self.session.trading_snapshot())

    def render_trading(self, snap: TradingSnapshot | None) -> None:
        version = snap.version if snap is not None else None
        if version == self._version:
            return
        self._version = version
        self.draw(snap)

    def draw(self, snap: TradingSnapshot | None) -> None:
        """Show ``snap`` (None: trading is not running)."""
