"""The chart panel's parts: candles (ui/panels/chart/candles.py), the crosshair with its
data window and the bid/ask lines (crosshair.py), the bar view's rules (bars_view.py).
The panel itself is ui/panels/tick_chart.py."""
