"""Entry point of the frozen ``trading-client`` executable (PyInstaller).

Why a separate file instead of ``app/__main__.py``: a frozen program re-executes *itself*
for every worker process (the pool starts workers with multiprocessing's ``spawn``
method, and the bundle has no ``python`` to spawn). ``freeze_support()`` must run before
anything else so that a re-executed copy becomes the worker (or multiprocessing's
resource tracker) instead of parsing the command line and starting another client.
Outside a frozen program it does nothing, so this file also runs from a source tree.

``TRADING_CLIENT_QT_PROBE=1`` makes the executable the Qt probe ``trading-client doctor``
runs in a child process (from a source tree that is ``python -m ui.probe``).
"""

from __future__ import annotations

import multiprocessing
import os
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if os.environ.get("TRADING_CLIENT_QT_PROBE") == "1":
        from ui.probe import main as probe

        sys.exit(probe())
    from trading_client import main

    sys.exit(main())
