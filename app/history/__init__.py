"""The terminal's history on screen: bars for the chart and the day figures at start."""
