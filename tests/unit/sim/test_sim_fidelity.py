"""Schedule fidelity: many concurrent streams are served on time, judged by the simulator's own truth.

The machine running the tests may be shared and busy, and an OS that deschedules the process for a few ms
shows up as lag no server can avoid. Each check therefore takes the best of a few attempts: a simulator that
cannot keep its schedule fails every attempt, while a noisy neighbour rarely spoils all of them. When every
attempt misses and the simulator demonstrably waited for a CPU (Linux schedstat run-queue time, or the load
average elsewhere), the test is skipped with the figures rather than failed.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import aiohttp
import pytest

from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

N_STREAMS = 200
TTFT_NS = 50_000_000
ITL_NS = 10_000_000
TOKENS = 20
ATTEMPTS = 3
BODY = {
    "model": "sim-model",
    "messages": [{"role": "user", "content": "go"}],
    "max_tokens": TOKENS,
    "stream": True,
    "stream_options": {"include_usage": True},
}


async def drive(http: aiohttp.ClientSession, url: str, tag: str) -> None:
    """Open N_STREAMS keep-alive connections, then run N_STREAMS streams at once (lean reads)."""

    async def warm() -> None:
        async with http.post(
            f"{url}/v1/completions", json={"prompt": "x", "max_tokens": 1, "model": "sim-model"}
        ) as r:
            await r.read()

    await asyncio.gather(*(warm() for _ in range(N_STREAMS)))

    async def one(i: int) -> None:
        async with http.post(
            f"{url}/v1/chat/completions", json=BODY, headers={"X-Request-Id": f"{tag}{i}"}
        ) as r:
            async for _ in r.content.iter_any():
                pass

    await asyncio.gather(*(one(i) for i in range(N_STREAMS)))


def runq_wait_ns(pid: int | str = "self") -> int | None:
    """Nanoseconds the process's main thread spent runnable but without a CPU (None if unknown)."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


class Attempts:
    """Median lag per attempt, plus the share of each attempt the simulator spent waiting for a CPU."""

    def __init__(self, pid: int | str = "self") -> None:
        self.pid = pid
        self.medians: list[float] = []
        self.waits: list[float | None] = []
        self._t0 = 0
        self._rq0: int | None = None

    def start(self) -> None:
        self._t0 = time.perf_counter_ns()
        self._rq0 = runq_wait_ns(self.pid)

    def stop(self, median: float) -> None:
        rq1 = runq_wait_ns(self.pid)
        span = time.perf_counter_ns() - self._t0
        self.medians.append(median)
        self.waits.append(None if rq1 is None or self._rq0 is None else (rq1 - self._rq0) / span)

    def judge(self, limit_ns: int) -> None:
        """Pass if any attempt met ``limit_ns``; skip (not fail) when the CPU was plainly not available."""
        if min(self.medians) < limit_ns:
            return
        detail = f"median send lags (ms): {[round(m / 1e6, 3) for m in self.medians]}"
        known = [w for w in self.waits if w is not None]
        if known:
            detail += f"; share of time waiting for a CPU: {[round(w, 2) for w in known]}"
            if min(known) > 0.1:
                pytest.skip(f"machine overloaded; {detail}")
        else:
            load = os.getloadavg()[0]
            if load > 1.5 * (os.cpu_count() or 1):
                pytest.skip(f"machine overloaded (load average {load:.1f}); {detail}")
        raise AssertionError(detail)


def lags_of(records: list[dict[str, Any]]) -> list[int]:
    """Per-chunk send lag behind schedule, after checking each intended schedule is exact."""
    lags: list[int] = []
    for rec in records:
        assert rec["outcome"] == "ok" and rec["completion_tokens"] == TOKENS
        # TTFT after arrival, then one ITL per token, absolute (lateness never accumulates)
        assert rec["due_ns"][0] - rec["arrival_ns"] == TTFT_NS
        assert rec["due_ns"][-1] - rec["due_ns"][0] == (TOKENS - 1) * ITL_NS
        lags.extend(s - d for s, d in zip(rec["chunk_ns"], rec["due_ns"], strict=True))
    assert len(lags) == N_STREAMS * TOKENS and min(lags) >= 0  # never early
    return lags


async def test_200_streams_in_process(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(ttft_ms=TTFT_NS / 1e6, itl_ms=ITL_NS / 1e6)
    attempts = Attempts()
    for attempt in range(ATTEMPTS):
        tag = f"a{attempt}-"
        attempts.start()
        await drive(http, sim.url, tag)
        recs = [r.to_dict() for k, r in sim.truth.items() if k.startswith(tag)]
        assert len(recs) == N_STREAMS
        attempts.stop(statistics.median(lags_of(recs)))
        if attempts.medians[-1] < 2_000_000:
            break
    attempts.judge(2_000_000)  # the client shares this event loop, so the bound also absorbs its work


async def test_200_streams_in_child_process(http: aiohttp.ClientSession) -> None:
    cfg = SimConfig(ttft_ms=TTFT_NS / 1e6, itl_ms=ITL_NS / 1e6)
    with SimProcess(cfg) as proc:
        attempts = Attempts(proc.pid)
        for attempt in range(ATTEMPTS):
            tag = f"p{attempt}-"
            attempts.start()
            await drive(http, proc.url, tag)
            recs = [r for r in proc.fetch_truth(clear=True) if r["request_id"].startswith(tag)]
            attempts.stop(statistics.median(lags_of(recs)))
            if attempts.medians[-1] < 1_000_000:
                break
    attempts.judge(1_000_000)  # its own CPU: the simulator alone must stay within 1 ms at the median


async def test_connection_burst_accepted_while_streaming() -> None:
    """New connections arriving while streams run are accepted promptly (uvloop's own accept lagged)."""
    cfg = SimConfig(ttft_ms=10.0, itl_ms=10.0)
    with SimProcess(cfg) as proc:
        body = {**BODY, "max_tokens": 200}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as streams:

            async def stream(i: int) -> None:
                async with streams.post(f"{proc.url}/v1/chat/completions", json=body) as r:
                    async for _ in r.content.iter_any():
                        pass

            running = [asyncio.create_task(stream(i)) for i in range(100)]
            await asyncio.sleep(0.3)
            fresh = aiohttp.TCPConnector(limit=0, force_close=True)
            async with aiohttp.ClientSession(connector=fresh) as burst:

                async def health() -> int:
                    async with burst.get(f"{proc.url}/health") as r:
                        return r.status

                t0 = time.perf_counter()
                statuses = await asyncio.gather(*(health() for _ in range(400)))
                took = time.perf_counter() - t0
            await asyncio.gather(*running)
    assert statuses == [200] * 400
    assert took < 5.0, f"400 new connections took {took:.1f} s"
