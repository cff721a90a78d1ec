"""``python -m app``: the headless commands (``run``, ``backend``, ``config``...).

The window needs the ``trading-client`` executable (``python -m trading_client``), which
wires it in; the core itself never loads Qt.
"""

import sys

from app.cli import main

sys.exit(main())
