"""``python -m app`` is the same as ``trading-client``."""

import sys

from app.cli import main

sys.exit(main())
