"""``python -m trading_client`` is the same as ``trading-client``."""

import sys

from trading_client import main

sys.exit(main())
