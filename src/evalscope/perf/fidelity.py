"""Client fidelity: is the client itself fast enough for its numbers to be trusted? (T1-T3)

An event-loop lag monitor (a periodic timer that measures how late it wakes up) shows when the client's own
loop is saturated; dispatch lag (time from "due and a slot is free" to "sent") shows client overhead in open
loop; achieved versus scheduled rate shows whether the offered load was delivered; CPU shows headroom. The
verdict and its reasons go into the summary and the manifest; ``--strict`` turns an untrustworthy run into
exit code 5.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from evalscope.perf.aggregate import Metric

_clock = time.perf_counter_ns

LOOP_LAG_P99_LIMIT_MS = 5.0
DISPATCH_LAG_P99_LIMIT_MS = 5.0
RATE_RATIO_LIMIT = 0.99
CPU_LIMIT_PERCENT = 95.0
TICK_S = 0.01


class LoopLagMonitor:
    """Every 10 ms, measure how late the loop woke us; feed ``sink()`` (the current stage's metric).

    ``on_second`` is called about once per second (timeline sampling, record flushing, live view).
    """

    def __init__(
        self, sink: Callable[[], Metric | None], on_tick: Callable[[int], None] | None = None
    ) -> None:
        self._sink = sink
        self._on_tick = on_tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        interval_ns = int(TICK_S * 1e9)
        while True:
            before = self._sink()
            due = _clock() + interval_ns
            await asyncio.sleep(TICK_S)
            now = _clock()
            m = self._sink()
            # Only intervals that began and ended in the same stage count (stage set-up is not run time).
            if m is not None and m is before:
                m.record(max(0, now - due))
            if self._on_tick is not None:
                self._on_tick(now)


class CpuMeter:
    """Process CPU time (user + system, all threads) over a wall-clock interval, in percent of one core."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        t = os.times()
        self._cpu0 = t.user + t.system
        self._wall0 = time.monotonic()

    def percent(self) -> float:
        t = os.times()
        wall = time.monotonic() - self._wall0
        return 0.0 if wall <= 0 else 100.0 * (t.user + t.system - self._cpu0) / wall

    def cpu_seconds(self) -> float:
        t = os.times()
        return t.user + t.system - self._cpu0


def verdict(
    loop_lag: Metric,
    dispatch_lag: Metric,
    cpu_percent: float,
    target_rate: float | None,
    scheduled_rate: float | None,
    achieved_rate: float | None,
    cap_reached: bool,
) -> dict[str, Any]:
    """The ``client`` block of a stage summary, with ``trustworthy`` and the reasons when not."""
    reasons: list[str] = []
    lag_p99 = loop_lag.percentile_ms(99.0)
    if lag_p99 is not None and lag_p99 > LOOP_LAG_P99_LIMIT_MS:
        reasons.append(
            f"event-loop lag p99 {lag_p99:.1f} ms > {LOOP_LAG_P99_LIMIT_MS:g} ms (client saturated)"
        )
    d_p99 = dispatch_lag.percentile_ms(99.0)
    if d_p99 is not None and d_p99 > DISPATCH_LAG_P99_LIMIT_MS:
        reasons.append(f"dispatch lag p99 {d_p99:.1f} ms > {DISPATCH_LAG_P99_LIMIT_MS:g} ms")
    if target_rate is not None and achieved_rate is not None:
        ref = scheduled_rate or target_rate
        if achieved_rate < RATE_RATIO_LIMIT * ref:
            why = (
                "the --parallel cap was reached: the server is slower than the offered load"
                if cap_reached
                else "the client fell behind its schedule"
            )
            reasons.append(f"achieved rate {achieved_rate:.2f}/s < 99% of scheduled {ref:.2f}/s ({why})")
    if cpu_percent > CPU_LIMIT_PERCENT:
        reasons.append(f"client CPU {cpu_percent:.0f}% of a core (> {CPU_LIMIT_PERCENT:g}%)")
    return {
        "loop_lag_ms": {
            "p50": loop_lag.percentile_ms(50.0),
            "p99": lag_p99,
            "max": None if loop_lag.count == 0 else loop_lag.max_ns / 1e6,
        },
        "dispatch_lag_ms": {
            "p99": d_p99,
            "max": None if dispatch_lag.count == 0 else dispatch_lag.max_ns / 1e6,
        },
        "target_rate": target_rate,
        "scheduled_rate": scheduled_rate,
        "achieved_rate": achieved_rate,
        "cpu_percent": round(cpu_percent, 1),
        "trustworthy": not reasons,
        "reason": "; ".join(reasons) if reasons else None,
    }
