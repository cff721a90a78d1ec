"""MT5 export files: read and write the terminal's tick and bar exports (and CSV, Parquet).

See :mod:`app.terminal.export_files.formats` for the layouts; ``docs/replay-and-export.md``
for how to make such files in the terminal and what to do with them here.
"""

from app.terminal.export_files.formats import (
    BAR_HEADER,
    BAR_HEADER_NO_TIME,
    RATES_DTYPE,
    TICK_HEADER,
    BadRow,
    ExportFormatError,
    ExportKind,
    RatesArray,
    ReadReport,
)
from app.terminal.export_files.rates import (
    TIMEFRAMES,
    RatesBuilder,
    rates_from_bars,
    rates_from_ticks,
    timeframe_ms,
)
from app.terminal.export_files.reader import (
    ExportReader,
    ReadResult,
    read_bars,
    read_export,
    read_ticks,
    read_time_span,
    sniff,
)
from app.terminal.export_files.writer import (
    BarFileWriter,
    ExportUnavailableError,
    FileFormat,
    TextEncoding,
    TickFileWriter,
    parquet_available,
    write_bars,
    write_parquet,
    write_ticks,
)

__all__ = [
    "BAR_HEADER",
    "BAR_HEADER_NO_TIME",
    "RATES_DTYPE",
    "TICK_HEADER",
    "TIMEFRAMES",
    "BadRow",
    "BarFileWriter",
    "ExportFormatError",
    "ExportKind",
    "ExportReader",
    "ExportUnavailableError",
    "FileFormat",
    "RatesArray",
    "RatesBuilder",
    "ReadReport",
    "ReadResult",
    "TextEncoding",
    "TickFileWriter",
    "parquet_available",
    "rates_from_bars",
    "rates_from_ticks",
    "read_bars",
    "read_export",
    "read_ticks",
    "read_time_span",
    "sniff",
    "timeframe_ms",
    "write_bars",
    "write_parquet",
    "write_ticks",
]
