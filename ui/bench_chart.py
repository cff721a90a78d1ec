"""``bench gui``'s chart phases: scrolling through 100k bars, and the cold start.

* **scroll_100k_bars**: the real window at 10k ticks/s on the M1 chart; the history is
  loaded back to 100,000 bars (about 70 days of M1) through the session, as scrolling
  would (``request_older``, untimed, with a deadline), then the view pans from the
  newest bar to the oldest in equal steps over ``--seconds``, 100 bars in view, each
  step drawn at once (``repaint``). Reported: frame time p50/p99/max (pan + refresh +
  paint) and the event loop's lag meanwhile.
* **cold_start**: a fresh process (``python -m ui.bench_chart CONFIG``) opens the
  window on the M1 chart and starts capture; it reports, from its own process start
  (the OS's creation time), when the first tick is on screen (the chart's bid line) and
  when the chart shows the last hour of history (bars from an hour ago to the last two
  minutes). The parent waits at most :data:`COLD_DEADLINE_S` and kills it after.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from app.bench.harness import Progress
from app.session import DesktopSession
from ui.panels.tick_chart import TickChart
from ui.window import MainWindow

#: Bars the scroll phase goes through.
SCROLL_BARS = 100_000
#: Loading them may take this long before the phase fails.
LOAD_DEADLINE_S = 120.0
#: The cold start's child process is killed after this long.
COLD_DEADLINE_S = 60.0
SLEEP_S = 0.005


class PhaseFailedError(RuntimeError):
    """A chart phase did not reach its state within its deadline."""


async def scroll_phase(
    session: DesktopSession, window: MainWindow, seconds: float, progress: Progress
) -> dict[str, Any]:
    """Load :data:`SCROLL_BARS` M1 bars, then pan through them; see the module doc."""
    chart = window.panels["tickChart"]
    assert isinstance(chart, TickChart)
    chart.set_view("M1")
    deadline = time.monotonic() + LOAD_DEADLINE_S
    symbol = chart.symbol
    while len(chart.candles) < SCROLL_BARS:
        if time.monotonic() > deadline:
            raise PhaseFailedError(
                f"only {len(chart.candles):,} bars loaded in {LOAD_DEADLINE_S:g} s"
            )
        chart.refresh()
        oldest = chart.candles.oldest_s
        if oldest is not None and not chart.bars_view.loading:
            session.request_older(symbol, "M1", int(oldest * 1000))
        await asyncio.sleep(0.05)
    progress.say(f"  scroll_100k_bars: {len(chart.candles):,} M1 bars loaded; panning")
    chart.pause_follow()
    newest, oldest = chart.candles.newest_s, chart.candles.oldest_s
    assert newest is not None
    assert oldest is not None
    span = 100 * 60.0
    steps = max(30, int(seconds * 30))
    rights = np.linspace(newest + 60, oldest + span, steps)
    lags: list[float] = []
    frames: list[float] = []
    stop = asyncio.Event()

    async def sample_lag() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(SLEEP_S)
            lags.append(time.perf_counter() - t - SLEEP_S)

    sampler = asyncio.create_task(sample_lag())
    viewport = chart.plot.viewport()
    started = time.perf_counter()
    try:
        for i, right in enumerate(rights):
            t = time.perf_counter()
            chart.viewbox.setXRange(right - span, right, padding=0)
            chart.refresh()
            viewport.repaint()
            frames.append(time.perf_counter() - t)
            # Keep to ~30 steps a second, letting the loop run in between.
            wait = started + (i + 1) / 30 - time.perf_counter()
            await asyncio.sleep(max(0.0, wait))
    finally:
        stop.set()
        await sampler
    frame_ms = np.asarray(frames) * 1000
    lag_ms = np.maximum(np.asarray(lags), 0.0) * 1000
    return {
        "phase": "scroll_100k_bars",
        "bars": len(chart.candles),
        "steps": steps,
        "frame_ms": {
            "p50": round(float(np.percentile(frame_ms, 50)), 2),
            "p99": round(float(np.percentile(frame_ms, 99)), 2),
            "max": round(float(frame_ms.max()), 2),
        },
        "loop_lag_ms": {
            "p50": round(float(np.percentile(lag_ms, 50)), 2),
            "p99": round(float(np.percentile(lag_ms, 99)), 2),
            "max": round(float(lag_ms.max()), 2),
            "samples": len(lags),
        },
        "pan_fps": round(steps / (time.perf_counter() - started), 1),
    }


#: The window's own start (trading_client.prepare_window_start), then the child.
_COLD_CHILD = (
    "import sys; from trading_client import prepare_window_start; prepare_window_start(); "
    "from ui.bench_chart import main; sys.exit(main())"
)


def cold_start(config: Path, progress: Progress) -> dict[str, Any]:
    """Run the cold start in a fresh process; its JSON line, or a failure."""
    progress.say("phase cold_start: started (a fresh process opens the window)")
    proc = subprocess.Popen(
        # -c, not -m ui.bench_chart: a spawned worker runs the parent's main module
        # again, and this one imports Qt and the window (seconds per worker); the app's
        # own main module (trading_client) imports nothing (see its doc).
        [sys.executable, "-c", _COLD_CHILD, str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=COLD_DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"phase": "cold_start", "error": f"no answer within {COLD_DEADLINE_S:g} s"}
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"phase": "cold_start", "error": f"exit {proc.returncode}: {out.strip()[-300:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    progress.say(
        f"phase cold_start: first tick {result.get('first_tick_s')} s, "
        f"last hour of history {result.get('history_hour_s')} s"
    )
    return result


async def _cold_child(config: Path) -> dict[str, Any]:
    born = psutil.Process().create_time()
    session = DesktopSession.open(config)
    window = MainWindow(session, layout_file=config.parent / "layout.ini")
    chart = window.panels["tickChart"]
    assert isinstance(chart, TickChart)
    chart.set_view("M1")
    window.show()
    start = asyncio.create_task(session.start())
    first = hour = None
    deadline = time.monotonic() + COLD_DEADLINE_S - 5
    try:
        while (first is None or hour is None) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            now = time.time()
            if first is None and chart.bars_view.quote.bid.isVisible():
                first = now - born
            oldest, newest = chart.candles.oldest_s, chart.candles.newest_s
            held = oldest is not None and newest is not None
            if hour is None and held and oldest <= now - 3600 and newest >= now - 120:  # type: ignore[operator]
                hour = now - born
        await start
    finally:
        window.close()
        await session.stop()
    return {
        "phase": "cold_start",
        "first_tick_s": None if first is None else round(first, 2),
        "history_hour_s": None if hour is None else round(hour, 2),
    }


def main() -> int:
    """Child of :func:`cold_start`: one JSON line on stdout."""
    from PySide6.QtWidgets import QApplication  # noqa: PLC0415

    from ui.loop import GuiEventLoop  # noqa: PLC0415

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    loop = GuiEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        result = loop.run_until_complete(_cold_child(Path(sys.argv[1])))
    print(json.dumps(result), flush=True)
    return 0 if result["first_tick_s"] is not None and result["history_hour_s"] else 1


if __name__ == "__main__":
    sys.exit(main())
