"""Which processes are a process's multiprocessing children (workers, helpers, backend).

Spawned children run ``spawn_main`` (their command line says so); workers and the
history helper are forked from the fork server where there is one
(app/connector/process_start.py): a fork keeps the server's command line, so such a
child is one whose *parent* is the fork server (the server itself is not counted: it
lives as long as the process that started it).
"""

from __future__ import annotations

import psutil


def _cmdline(proc: psutil.Process) -> str:
    return " ".join(proc.cmdline())


def mp_children(root: psutil.Process, *, recursive: bool = True) -> list[psutil.Process]:
    """``root``'s spawned children and children of its fork server, still running."""
    found = []
    for child in root.children(recursive=recursive):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            line = _cmdline(child)
            if "spawn_main" in line:
                found.append(child)
            elif "forkserver" in line:
                parent = child.parent()
                if parent is not None and "forkserver" in _cmdline(parent):
                    found.append(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return found
