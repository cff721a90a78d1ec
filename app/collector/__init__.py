"""Everything captured ticks go through after the connector: sequence, cache, bars, fan-out.

Pure numpy and asyncio; nothing here imports Qt.
"""

from app.collector.bars import (
    BAR_DTYPE,
    DEFAULT_BAR_HISTORY,
    H1,
    M1,
    M5,
    M15,
    BarAggregator,
    BarArray,
    empty_bars,
    spread_mean,
)
from app.collector.cache import TickCache, TickRing
from app.collector.collector import Collector
from app.collector.fanout import CallbackSubscription, FanOut, QueueSubscription
from app.collector.ring import StructRing
from app.collector.sequenced import SequencedBatch
from app.collector.stats import CollectorStats, SymbolStats

__all__ = [
    "BAR_DTYPE",
    "DEFAULT_BAR_HISTORY",
    "H1",
    "M1",
    "M5",
    "M15",
    "BarAggregator",
    "BarArray",
    "CallbackSubscription",
    "Collector",
    "CollectorStats",
    "FanOut",
    "QueueSubscription",
    "SequencedBatch",
    "StructRing",
    "SymbolStats",
    "TickCache",
    "TickRing",
    "empty_bars",
    "spread_mean",
]
