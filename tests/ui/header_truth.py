"""Whether a header label is drawn whole: asked of the style's own drawing code.

Truth independent of the panel's width arithmetic and of the platform's fonts: the
header's style draws the whole section (``CE_Header``: background, label, sort arrow,
as ``QHeaderView::paintSection`` does) twice, with the label and with no text; the
pixels that differ are the label's. The label is whole when those pixels span as wide
as they do in a section with room to spare (an elided "Spr…" or a clipped "read" spans
less), and, on the sorted column, when none of them lies on the sort arrow.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QHeaderView, QStyle, QStyleOptionHeader, QStyleOptionHeaderV2

_SPARE = 400


def _option(header: QHeaderView, col: int, width: int, text: str) -> QStyleOptionHeaderV2:
    opt = QStyleOptionHeaderV2()
    opt.initFrom(header)
    opt.state |= QStyle.StateFlag.State_Horizontal | QStyle.StateFlag.State_Enabled
    opt.orientation = Qt.Orientation.Horizontal
    opt.section = col
    opt.text = text
    model = header.model()
    align = model.headerData(col, Qt.Orientation.Horizontal, Qt.ItemDataRole.TextAlignmentRole)
    opt.textAlignment = (
        Qt.AlignmentFlag(align) if align is not None else Qt.AlignmentFlag.AlignCenter
    )
    opt.textElideMode = header.textElideMode()
    if header.isSortIndicatorShown() and header.sortIndicatorSection() == col:
        up = header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
        opt.sortIndicator = (
            QStyleOptionHeader.SortIndicator.SortUp
            if up
            else QStyleOptionHeader.SortIndicator.SortDown
        )
    opt.rect = QRect(0, 0, width, max(header.height(), header.sizeHint().height()))
    return opt


def _pixels(header: QHeaderView, opt: QStyleOptionHeaderV2) -> np.ndarray:
    image = QImage(opt.rect.width(), opt.rect.height(), QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    painter.setFont(header.font())
    header.style().drawControl(QStyle.ControlElement.CE_Header, opt, painter, header)
    painter.end()
    words = image.bytesPerLine() // 4
    data = np.frombuffer(image.constBits(), dtype=np.uint32, count=words * image.height())
    return data.reshape(image.height(), words)[:, : image.width()].copy()


def _text_columns(header: QHeaderView, col: int, width: int) -> tuple[int, int] | None:
    """First and last pixel column the label's text covers in a section ``width`` wide."""
    label = str(header.model().headerData(col, Qt.Orientation.Horizontal))
    drawn = _pixels(header, _option(header, col, width, label))
    empty = _pixels(header, _option(header, col, width, ""))
    cols = np.flatnonzero((drawn != empty).any(axis=0))
    return (int(cols[0]), int(cols[-1])) if cols.size else None


def label_drawn_whole(header: QHeaderView, col: int, width: int | None = None) -> bool:
    """True when section ``col`` at ``width`` (default: its current size) shows its
    whole label, clear of the sort arrow."""
    size = header.sectionSize(col) if width is None else width
    real = _text_columns(header, col, size)
    roomy = _text_columns(header, col, size + _SPARE)
    if real is None or roomy is None or real[1] - real[0] != roomy[1] - roomy[0]:
        return False
    opt = _option(header, col, size, "")
    if opt.sortIndicator is QStyleOptionHeader.SortIndicator.None_:
        return True
    arrow = header.style().subElementRect(QStyle.SubElement.SE_HeaderArrow, opt, header)
    return real[1] < arrow.left() or real[0] > arrow.right()


__all__ = ["label_drawn_whole"]
