"""Whether a header label is drawn whole: asked of the style's own drawing code.

Truth independent of the panel's width arithmetic and of the platform's fonts: the
style draws the section's label (``CE_HeaderLabel`` in its ``SE_HeaderLabel`` rect, as
``QHeaderView::paintSection`` does through ``CE_Header``) once in the section's real
width and once with room to spare; the two pictures are the same only if the real one
neither elided nor clipped the text. Left-aligned for both, so the text starts at the
same pixel whatever the column's alignment.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QHeaderView, QStyle, QStyleOptionHeader, QStyleOptionHeaderV2

_SPARE = 400


def _draw(header: QHeaderView, opt: QStyleOptionHeaderV2, label: QRect, width: int) -> QImage:
    image = QImage(width, label.bottom() + 2, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    painter.setFont(header.font())
    opt.rect = label
    header.style().drawControl(QStyle.ControlElement.CE_HeaderLabel, opt, painter, header)
    painter.end()
    return image


def label_drawn_whole(header: QHeaderView, col: int, width: int | None = None) -> bool:
    """True when section ``col`` at ``width`` (default: its current size) shows its
    whole label."""
    size = header.sectionSize(col) if width is None else width
    opt = QStyleOptionHeaderV2()
    opt.initFrom(header)
    opt.state |= QStyle.StateFlag.State_Horizontal
    opt.orientation = Qt.Orientation.Horizontal
    opt.section = col
    opt.text = str(header.model().headerData(col, Qt.Orientation.Horizontal))
    opt.textAlignment = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
    opt.textElideMode = header.textElideMode()
    if header.isSortIndicatorShown() and header.sortIndicatorSection() == col:
        up = header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
        opt.sortIndicator = (
            QStyleOptionHeader.SortIndicator.SortUp
            if up
            else QStyleOptionHeader.SortIndicator.SortDown
        )
    opt.rect = QRect(0, 0, size, max(header.height(), header.sizeHint().height()))
    label = header.style().subElementRect(QStyle.SubElement.SE_HeaderLabel, opt, header)
    narrow = _draw(header, opt, label, label.right() + _SPARE)
    wide = _draw(header, opt, label.adjusted(0, 0, _SPARE - 10, 0), label.right() + _SPARE)
    return narrow == wide


__all__ = ["label_drawn_whole"]
