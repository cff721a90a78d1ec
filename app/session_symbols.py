"""The session's symbol intents: the terminal's symbol list, adding and removing a symbol.

Split from :mod:`app.session` (one job per module). :class:`SymbolIntents` is a mixin of
:class:`~app.session.DesktopSession`. Adding or removing a symbol changes the settings
(saved atomically) and, while capture runs, restarts only the one worker that takes or
gives up the symbol: the others keep streaming.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.config import ClientConfig
from app.config.schema import TerminalConfig
from app.config.store import ConfigStore, InvalidConfig, validate_document
from app.session_vault import login_once
from app.terminal.loader import TerminalUnavailable, open_terminal

if TYPE_CHECKING:
    from app.runtime import Runtime

log = logging.getLogger("app.session")


class SymbolListError(Exception):
    """A terminal's symbol list could not be had; the message says why (MT5's error)."""


@dataclass(frozen=True, slots=True)
class TerminalSymbol:
    """One entry of a terminal's symbol list (``symbols_get()``), for the symbol browser."""

    name: str
    description: str
    path: str
    terminal: str


@dataclass(frozen=True, slots=True)
class SymbolChange:
    """The answer to "capture this symbol" or "stop capturing it": ``ok`` with what
    happened, or the reason not."""

    ok: bool
    symbol: str
    message: str
    #: The worker restarted for it (None: not running, refused, or nothing to change).
    worker_id: int | None = None


class SymbolIntents:
    """Symbol intents of :class:`~app.session.DesktopSession` (a mixin)."""

    config: ClientConfig
    store: ConfigStore
    runtime: Runtime | None
    _lock: asyncio.Lock
    _symbol_lists: dict[str, list[TerminalSymbol]]
    #: The terminal passwords (the vault mixin's method).
    _passwords: Callable[[ClientConfig], Awaitable[dict[str, str]]]

    async def terminal_symbols(self, terminal_name: str | None = None) -> list[TerminalSymbol]:
        """The symbols a terminal offers (its ``symbols_get()``), asked once per session
        in a short-lived connection off the loop (the capture's terminals live in worker
        processes), like the connection test. Raises :class:`SymbolListError` with the
        terminal's reason when it cannot be asked."""
        term = self._terminal(terminal_name)
        cached = self._symbol_lists.get(term.name)
        if cached is not None:
            return cached
        password = (await self._passwords(self.config)).get(term.name)
        spec = term.to_spec(password)

        def ask() -> list[TerminalSymbol]:
            try:
                api = open_terminal(spec)
            except TerminalUnavailable as exc:
                raise SymbolListError(str(exc)) from None
            try:
                failed = login_once(api, spec)
                if failed:
                    raise SymbolListError(f"{term.name}: {failed}")
                infos = api.symbols_get()
                if infos is None:
                    code, text = api.last_error()
                    raise SymbolListError(f"{term.name}: symbols_get: MT5 error {code}: {text}")
                return [TerminalSymbol(i.name, i.description, i.path, term.name) for i in infos]
            finally:
                api.shutdown()

        symbols = await asyncio.to_thread(ask)
        self._symbol_lists[term.name] = symbols
        return symbols

    def _terminal(self, name: str | None) -> TerminalConfig:
        terms = self.config.terminals
        term = terms[0] if name is None else next((t for t in terms if t.name == name), None)
        if term is None:
            raise SymbolListError(f"no terminal named {name!r} in the settings")
        return term

    def _owner(self, name: str) -> tuple[int, str] | None:
        """(terminal index, symbol as spelled in the settings) of a captured ``name``."""
        return next(
            (
                (i, s)
                for i, t in enumerate(self.config.terminals)
                for s in t.symbols
                if s.casefold() == name.casefold()
            ),
            None,
        )

    async def _save_symbols(self, index: int, symbols: list[str]) -> ClientConfig | str:
        """Settings with terminal ``index`` capturing ``symbols``, validated and saved;
        the validation's reason when refused. Call under the session's lock."""
        doc = self.config.model_dump(mode="json")
        doc["terminals"][index]["symbols"] = symbols
        try:
            config = validate_document(doc, "settings")
        except InvalidConfig as exc:
            return str(exc)
        await asyncio.to_thread(self.store.save, config)
        self.config = config
        if self.runtime is not None:
            self.runtime.config = config
        return config

    async def add_symbol(self, name: str, terminal_name: str | None = None) -> SymbolChange:
        """Capture ``name`` (any case) from a terminal (default the first): refused with
        the terminal's reason when its ``symbols_get()`` has no such symbol; else saved in
        the settings (``terminals[i].symbols``) and, while capture runs, taken by one
        worker that restarts alone (``Runtime.add_symbol``)."""
        name = name.strip()
        owner = self._owner(name)
        if owner is not None:
            where = self.config.terminals[owner[0]].name
            return SymbolChange(True, owner[1], f"{owner[1]} is captured already by {where}")
        try:
            term = self._terminal(terminal_name)
            offered = await self.terminal_symbols(term.name)
        except SymbolListError as exc:
            return SymbolChange(False, name, f"{name} not added: {exc}")
        match = next((s for s in offered if s.name.casefold() == name.casefold()), None)
        if match is None:
            return SymbolChange(
                False,
                name,
                f"{name} not added: terminal {term.name} does not offer it "
                f"(not among the {len(offered)} symbols of its symbols_get())",
            )
        symbol = match.name
        async with self._lock:
            index = next(i for i, t in enumerate(self.config.terminals) if t.name == term.name)
            saved = await self._save_symbols(index, [*self.config.terminals[index].symbols, symbol])
            if isinstance(saved, str):
                return SymbolChange(False, symbol, f"{symbol} not added: {saved}")
            worker = self.runtime.add_symbol(term.name, symbol) if self.runtime else None
        log.info("%s added to terminal %s and saved to %s", symbol, term.name, self.store.path)
        where = f"; worker {worker} restarted to capture it" if worker is not None else ""
        return SymbolChange(True, symbol, f"{symbol} added to {term.name}{where}", worker)

    async def remove_symbol(self, name: str) -> SymbolChange:
        """Stop capturing ``name`` (any case): removed from its terminal's symbols in the
        settings (saved) and, while capture runs, from the one worker that captured it,
        which restarts alone. The last symbol of a terminal is refused (a terminal with
        nothing to capture has no worker: remove the terminal in Settings instead)."""
        name = name.strip()
        owner = self._owner(name)
        if owner is None:
            return SymbolChange(False, name, f"{name} is not captured: nothing to remove")
        index, symbol = owner
        term = self.config.terminals[index]
        if len(term.symbols) == 1:
            return SymbolChange(
                False,
                symbol,
                f"{symbol} not removed: it is the last symbol of terminal {term.name} "
                "(a terminal captures at least one; remove the terminal in Settings instead)",
            )
        async with self._lock:
            kept = [s for s in term.symbols if s != symbol]
            saved = await self._save_symbols(index, kept)
            if isinstance(saved, str):
                return SymbolChange(False, symbol, f"{symbol} not removed: {saved}")
            worker = self.runtime.remove_symbol(symbol) if self.runtime else None
        log.info("%s removed from terminal %s and saved to %s", symbol, term.name, self.store.path)
        where = f"; worker {worker} restarted without it" if worker is not None else ""
        return SymbolChange(True, symbol, f"{symbol} no longer captured{where}", worker)


__all__ = ["SymbolChange", "SymbolIntents", "SymbolListError", "TerminalSymbol"]
