"""``trading-client terminal serve``: the simulated terminal as the ``MetaTrader5`` module,
served over RPyC classic the way ``mt5linux`` serves the real one under Wine.

So that the remote path (:mod:`app.terminal.remote`) is tested end to end without
Windows: the same kind of server (an RPyC ``ThreadedServer`` running ``SlaveService``,
as ``python -m mt5linux`` starts), where ``import MetaTrader5`` resolves to a module
whose functions and constants are a :class:`SimulatedTerminal`'s. The module is put in
``sys.modules`` of the server process only.

One terminal serves every connection, as one ``MetaTrader5`` module does in the real
server process; the client's helper serialises calls with a lock of the process.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import Final

from app.terminal.remote import load_rpyc
from app.terminal.simulated import SimulatedTerminal

__all__ = ["SIMULATED_VERSION", "TerminalServer", "simulated_module"]

#: ``MetaTrader5.__version__`` of the served module: the real package's scheme, marked.
SIMULATED_VERSION: Final = "5.0.5000+simulated"


def simulated_module(terminal: SimulatedTerminal) -> ModuleType:
    """A ``MetaTrader5`` module object whose functions and constants are ``terminal``'s."""
    module = ModuleType("MetaTrader5", "The simulated terminal, served as MetaTrader5.")
    for name in dir(terminal):
        if not name.startswith("_"):
            setattr(module, name, getattr(terminal, name))
    module.__version__ = SIMULATED_VERSION  # type: ignore[attr-defined]
    module.__author__ = "trading-client (simulated)"  # type: ignore[attr-defined]
    return module


class TerminalServer:
    """An RPyC classic server on ``host``:``port`` with ``module`` as ``MetaTrader5``.

    The port is bound when this is built (a port in use raises ``OSError`` here, before
    anything is announced); :meth:`serve` blocks until :meth:`close` (or SIGINT/SIGTERM
    with :meth:`serve_until_signal`).
    """

    def __init__(self, host: str, port: int, module: ModuleType) -> None:
        rpyc = load_rpyc()
        from rpyc.utils.server import ThreadedServer  # noqa: PLC0415 - rpyc is optional

        self.module = module
        quiet = logging.getLogger("app.terminal.serve.rpyc")
        quiet.setLevel(logging.ERROR)  # rpyc logs every connection at INFO
        self._server = ThreadedServer(
            rpyc.SlaveService, hostname=host, port=port, reuse_addr=True, logger=quiet
        )
        # rpyc listens in start(); listen now, so connections wait from the announcement on.
        self._server._listen()
        self.host = host
        self.port = int(self._server.port)

    def serve(self) -> None:
        # Only now, in the serving process: what the clients' "import MetaTrader5" finds.
        sys.modules["MetaTrader5"] = self.module
        self._server.start()

    def close(self) -> None:
        self._server.close()

    def serve_until_signal(self, ready: Callable[[TerminalServer], None]) -> None:
        """Announce with ``ready``, serve, and return on SIGINT or SIGTERM."""
        stop = threading.Event()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        thread = threading.Thread(target=self.serve, name="rpyc-server", daemon=True)
        thread.start()
        ready(self)
        while not stop.wait(0.2) and thread.is_alive():
            pass
        self.close()
        thread.join(timeout=5)
