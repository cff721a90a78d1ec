"""The desktop window: Qt widgets that render the core's state and send user intent back.

Everything here is presentation. State comes from :mod:`app` (through
:class:`app.session.DesktopSession`), and no module in this package opens a file, a
socket or the vault itself.

PySide6 is imported before anything that picks a Qt binding (qasync, pyqtgraph), and the
environment names the binding as well, so all three agree on PySide6 whatever the import
order elsewhere.
"""

import os

os.environ.setdefault("QT_API", "pyside6")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import PySide6  # noqa: F401 - must come before qasync and pyqtgraph
