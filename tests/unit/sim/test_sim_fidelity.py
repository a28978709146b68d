"""Schedule fidelity: many concurrent streams are served on time, judged by the simulator's own truth.

The machine running the tests may be shared and busy, and an OS that deschedules the process for a few ms
shows up as lag no server can avoid. Each check therefore takes the best of a few attempts: a simulator that
cannot keep its schedule fails every attempt, while a noisy neighbour rarely spoils all of them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
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


def judge(medians: list[float], limit_ns: int) -> None:
    """Pass if any attempt met ``limit_ns``; skip (not fail) when the machine is plainly oversubscribed."""
    if min(medians) < limit_ns:
        return
    load = os.getloadavg()[0]
    detail = f"median send lags (ms): {[round(m / 1e6, 3) for m in medians]}"
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
    medians = []
    for attempt in range(ATTEMPTS):
        tag = f"a{attempt}-"
        await drive(http, sim.url, tag)
        recs = [r.to_dict() for k, r in sim.truth.items() if k.startswith(tag)]
        assert len(recs) == N_STREAMS
        medians.append(statistics.median(lags_of(recs)))
        if medians[-1] < 2_000_000:
            break
    judge(medians, 2_000_000)  # the client shares this event loop, so the bound also absorbs its work


async def test_200_streams_in_child_process(http: aiohttp.ClientSession) -> None:
    cfg = SimConfig(ttft_ms=TTFT_NS / 1e6, itl_ms=ITL_NS / 1e6)
    medians = []
    with SimProcess(cfg) as proc:
        for attempt in range(ATTEMPTS):
            tag = f"p{attempt}-"
            await drive(http, proc.url, tag)
            recs = [r for r in proc.fetch_truth(clear=True) if r["request_id"].startswith(tag)]
            lags = sorted(lags_of(recs))
            medians.append(statistics.median(lags))
            if medians[-1] < 2_000_000:
                break
    judge(medians, 2_000_000)
