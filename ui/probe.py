"""``python -m ui.probe``: can Qt start here? Prints one JSON line and exits.

Why a separate process: ``trading-client doctor`` lives in the core, which never imports
Qt, and a Qt platform plugin that cannot load (no display, a missing ``libEGL`` or
``libxkbcommon``) aborts the whole process instead of raising. Run as a child, the abort
only costs the child, and the parent reads its exit code. The frozen bundle has no
``python -m``: its entry point runs :func:`main` when ``TRADING_CLIENT_QT_PROBE`` is set.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from PySide6.QtCore import QLibraryInfo, qVersion  # noqa: PLC0415
    from PySide6.QtGui import QFontDatabase, QGuiApplication  # noqa: PLC0415

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    assert isinstance(app, QGuiApplication)
    families = QFontDatabase.families()
    print(
        json.dumps(
            {
                "qt": qVersion(),
                "platform": app.platformName(),
                "plugins": QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath),
                "fonts": len(families),
                "default_font": app.font().family(),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
