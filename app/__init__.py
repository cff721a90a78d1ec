"""Trading data client core: capture, aggregate, cache and stream MetaTrader 5 ticks.

Nothing under this package imports Qt; the desktop window lives in :mod:`ui`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trading-client")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
