"""Client fidelity: is the client itself fast enough for its numbers to be trusted? (T1-T3)

An event-loop lag monitor (a periodic timer that measures how late it wakes up) shows when the client's own
loop is saturated; dispatch lag (time from "due and a slot is free" to "sent") shows client overhead in open
loop; achieved versus scheduled rate shows whether the offered load was delivered; CPU shows headroom. The
verdict and its reasons go into the summary and the manifest; ``--strict`` turns an untrustworthy run into
exit code 5.

May import: ``perf.histogram`` only: it measures the client, it never runs it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from evalscope.perf.histogram import Metric

_clock = time.perf_counter_ns

#: The accuracy the docs claim: client-added error of TTFT, ITL/TPOT and end-to-end latency within 2 ms.
ACCURACY_CLAIM_MS = 2.0
#: Derived from the claim (docs/metrics.md, "Why these limits"): a stamp taken when the loop gets to a ready
#: socket is late by at most what the 10 ms lag timer measures in the same window, so a loop-lag p99 within
#: the claim keeps 99 % of stamps within it. Dispatch lag shifts the schedule by the same kind of delay.
LOOP_LAG_P99_LIMIT_MS = ACCURACY_CLAIM_MS
DISPATCH_LAG_P99_LIMIT_MS = ACCURACY_CLAIM_MS
#: Send side (simulator's arrival - client's sent), checked when the server is our simulator on this machine.
SEND_SIDE_P99_LIMIT_MS = ACCURACY_CLAIM_MS
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
    """Process CPU time (user + system, all threads) over a wall-clock interval, in percent of one core.

    Also the event-loop thread's run-queue wait (:func:`run_delay_ns`): time it was ready to run but another
    process had the CPU.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        t = os.times()
        self._cpu0 = t.user + t.system
        self._wall0 = time.monotonic()
        self._wait0 = run_delay_ns()

    def wait_percent(self) -> float | None:
        """Run-queue wait of the loop thread since :meth:`reset`, in percent of the wall time (None: unknown)."""
        w = run_delay_ns()
        wall = time.monotonic() - self._wall0
        if w is None or self._wait0 is None or wall <= 0:
            return None
        return 100.0 * (w - self._wait0) / 1e9 / wall

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
    wait_percent: float | None = None,
    machine_busy_percent: float | None = None,
) -> dict[str, Any]:
    """The ``client`` block of a stage summary, with ``trustworthy`` and the reasons when not.

    ``wait_percent`` (the loop thread's run-queue wait) and ``machine_busy_percent`` (the busy time of the
    CPUs the client may run on) let a loop-lag reason name its cause (:func:`lag_cause`).
    """
    reasons: list[str] = []
    lag_p99 = loop_lag.percentile_ms(99.0)
    cause = lag_cause(cpu_percent, wait_percent, machine_busy_percent)
    if lag_p99 is not None and lag_p99 > LOOP_LAG_P99_LIMIT_MS:
        reasons.append(
            f"event-loop lag p99 {lag_p99:.1f} ms > {LOOP_LAG_P99_LIMIT_MS:g} ms ({cause['text']})"
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
        "cpu_contention": cause,
        "trustworthy": not reasons,
        "reason": "; ".join(reasons) if reasons else None,
    }


# ---- why the loop lagged: the client's own CPU, or other processes' --------------------------------------

#: The client used this much of a core (or was ready to run this much while using over a third): CPU-bound.
CLIENT_BOUND_PERCENT = 60.0
CLIENT_DEMAND_PERCENT = 90.0
#: The loop thread waited for a CPU at least this much of the wall time, and at least half as long as it ran:
#: other processes took the CPU (a lagging loop that mostly waits was starved, not busy).
WAIT_LIMIT_PERCENT = 5.0
#: Without run-queue accounting: the client's CPUs were this busy while the client used little.
MACHINE_BUSY_PERCENT = 90.0


def run_delay_ns() -> int | None:
    """Run-queue wait of this process's main thread (the event loop's), from ``/proc/self/schedstat``."""
    try:
        with open("/proc/self/schedstat", "rb") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cpu_times(cpus: set[int]) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over ``cpus`` from ``/proc/stat`` (None off Linux)."""
    try:
        with open("/proc/stat", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        if not line.startswith(b"cpu") or line[3:4] == b" ":
            continue
        parts = line.split()
        try:
            if int(parts[0][3:]) not in cpus:
                continue
            v = [int(x) for x in parts[1:9]]  # user nice system idle iowait irq softirq steal
        except ValueError:
            continue
        t = sum(v)
        total += t
        busy += t - v[3] - v[4]
    return (busy, total) if total else None


def allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


class MachineMeter:
    """Busy time of the CPUs this process may run on (all processes on them), in percent, over an interval."""

    def __init__(self) -> None:
        self.cpus = allowed_cpus()
        self._t0 = _cpu_times(self.cpus)

    def busy_percent(self) -> float | None:
        t1 = _cpu_times(self.cpus)
        if t1 is None or self._t0 is None or t1[1] <= self._t0[1]:
            return None
        return 100.0 * (t1[0] - self._t0[0]) / (t1[1] - self._t0[1])


def lag_cause(
    cpu_percent: float, wait_percent: float | None, machine_busy_percent: float | None
) -> dict[str, Any]:
    """Name what made the event loop late: ``client_cpu`` (the client itself used the CPU), ``other_processes``
    (it was ready to run but another process had the CPU), both, or ``unclear``; with advice.

    The client's CPU time and its run-queue wait are the evidence; the machine's busy time stands in for the
    wait where the kernel does not account it.
    """
    demand = cpu_percent + (wait_percent or 0.0)
    client = cpu_percent >= CLIENT_BOUND_PERCENT or (
        demand >= CLIENT_DEMAND_PERCENT and cpu_percent >= CLIENT_BOUND_PERCENT / 2
    )
    if wait_percent is not None:
        others = wait_percent >= WAIT_LIMIT_PERCENT and wait_percent >= cpu_percent / 2
    else:
        others = (
            machine_busy_percent is not None
            and machine_busy_percent >= MACHINE_BUSY_PERCENT
            and cpu_percent < CLIENT_BOUND_PERCENT
        )
    used = f"the client used {cpu_percent:.0f}% of a core"
    waited = "" if wait_percent is None else f" and waited for one {wait_percent:.0f}% of the time"
    busy = "" if machine_busy_percent is None else f"; its CPUs were {machine_busy_percent:.0f}% busy"
    if client and others:
        cause = "client_cpu_and_other_processes"
        text = f"client CPU-bound, and other processes took CPU time: {used}{waited}{busy}"
        advice = (
            "give the client CPUs of its own (taskset -c, with the server pinned elsewhere) and spread it "
            "with --workers N, or run it on a separate machine"
        )
    elif client:
        cause = "client_cpu"
        text = f"client CPU-bound: {used}{waited}"
        advice = "spread the load over processes with --workers N, or run the client on a separate machine"
    elif others:
        cause = "other_processes"
        text = f"other processes took the CPU: {used}{waited}{busy}"
        advice = (
            "pin the server and the client to separate cores (e.g. taskset -c 1 evalscope perf ..., the "
            "server on core 0) or run the client on a separate machine"
        )
    else:
        cause = "unclear"
        text = f"cause unclear: {used}{waited}{busy}"
        advice = "rerun on a quiet machine, or run the client on a separate machine"
    return {
        "cause": cause,
        "text": f"{text}; {advice}",
        "cpu_percent": round(cpu_percent, 1),
        "wait_percent": None if wait_percent is None else round(wait_percent, 1),
        "machine_busy_percent": None if machine_busy_percent is None else round(machine_busy_percent, 1),
    }


def apply_send_side(client_block: dict[str, Any], send_side: dict[str, Any] | None) -> None:
    """Add the send-side check to a stage's ``client`` block (in place).

    ``send_side`` comes from :func:`evalscope.perf.sendside.measure`: the simulator's own arrival stamp of
    each sampled request minus the client's ``sent_ns``. The loop-lag monitor cannot see time spent between
    stamping "sent" and writing the request (queued behind other requests' set-up), and every latency is
    measured from that stamp, so a late write inflates TTFT and end-to-end latency one for one.
    """
    if send_side is None:
        return
    client_block["send_side_ms"] = send_side
    p99 = send_side.get("p99")
    if p99 is None or p99 <= SEND_SIDE_P99_LIMIT_MS:
        return
    if send_side.get("clock") != "kernel":
        # The loop's stamp is an upper bound: it also holds the simulator's own lateness in reading the socket,
        # which is what a burst of requests arriving together shows (128 streams: up to 8 ms on the loop's
        # stamp while the kernel's stamp of the same requests says 0.04 ms). Over the limit, it proves nothing
        # about the client: reported, not judged.
        send_side["judged"] = False
        send_side["note"] = (
            f"p99 {p99:.1f} ms is an upper bound (the simulator's event-loop stamp also holds its own lateness "
            "in reading the socket): not judged; a simulator started with `evalscope sim --loop asyncio` stamps "
            "the kernel's receive time"
        )
        return
    reason = (
        f"send side p99 {p99:.1f} ms > {SEND_SIDE_P99_LIMIT_MS:g} ms "
        "(simulator kernel stamp - client sent: latencies include it)"
    )
    client_block["trustworthy"] = False
    prev = client_block.get("reason")
    client_block["reason"] = f"{prev}; {reason}" if prev else reason
