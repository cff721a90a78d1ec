"""Draw the application icon and write ``resources/icons/trading-client.{png,ico,icns}``.

Why drawn in code: the icon stays reproducible and reviewable (no binary design file),
and needs nothing beyond PySide6, which the app depends on anyway. The generated files
are committed; run this again only when the drawing changes::

    QT_QPA_PLATFORM=offscreen python packaging/make_icon.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter, QPainterPath, QPen

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"
#: Candlesticks as (open, close, low, high) on a 0..1 scale; rising green, falling red.
CANDLES = [
    (0.30, 0.45, 0.22, 0.52),
    (0.45, 0.38, 0.30, 0.55),
    (0.38, 0.62, 0.35, 0.70),
    (0.62, 0.78, 0.55, 0.86),
]


def draw(size: int) -> QImage:
    """The icon at ``size`` pixels: candles on a dark rounded square, a tick line over them."""
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#1b2330"))
    p.drawRoundedRect(QRectF(0.04 * s, 0.04 * s, 0.92 * s, 0.92 * s), 0.18 * s, 0.18 * s)
    left, width = 0.16 * s, 0.68 * s
    step = width / len(CANDLES)

    def y(v: float) -> float:
        return s * (0.88 - 0.76 * v)

    for i, (o, c, lo, hi) in enumerate(CANDLES):
        colour = QColor("#26a69a") if c >= o else QColor("#ef5350")
        x = left + step * (i + 0.5)
        p.setPen(QPen(colour, max(1.0, 0.025 * s)))
        p.drawLine(QPointF(x, y(lo)), QPointF(x, y(hi)))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        top, bottom = y(max(o, c)), y(min(o, c))
        p.drawRect(QRectF(x - 0.28 * step, top, 0.56 * step, max(bottom - top, 0.02 * s)))
    path = QPainterPath(QPointF(0.12 * s, y(0.18)))
    for k, v in enumerate([0.26, 0.2, 0.42, 0.36, 0.58, 0.52, 0.9]):
        path.lineTo(QPointF(0.12 * s + (k + 1) * 0.76 * s / 7, y(v)))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.setPen(
        QPen(
            QColor("#ffca28"),
            max(1.0, 0.035 * s),
            Qt.PenStyle.SolidLine,
            Qt.PenCapStyle.RoundCap,
            Qt.PenJoinStyle.RoundJoin,
        )
    )
    p.drawPath(path)
    p.end()
    return image


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    ICONS.mkdir(parents=True, exist_ok=True)
    ok = draw(256).save(str(ICONS / "trading-client.png"), "PNG")
    # Qt's ICO writer stores one image; 64 px keeps the file small and is scaled for the
    # taskbar and Explorer (Windows picks the closest size and scales it).
    ok = draw(64).save(str(ICONS / "trading-client.ico"), "ICO") and ok
    # macOS: Qt's ICNS writer stores the PNG inside; the Finder and Dock scale it.
    ok = draw(256).save(str(ICONS / "trading-client.icns"), "ICNS") and ok
    del app
    for f in sorted(ICONS.iterdir()):
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size:,} bytes")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
