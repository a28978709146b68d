"""The capacity model: a batch of K, FIFO queueing on the ideal timeline, ITL growing with the batch, KV budget."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from evalscope.sim import SimConfig
from evalscope.sim.capacity import capacity_rps, service_time_s

pytestmark = pytest.mark.timeout(60)


def _body(n: int, stream: bool = True, words: int = 3) -> dict[str, Any]:
    return {
        "model": "sim-model",
        "messages": [{"role": "user", "content": " ".join(["w"] * words)}],
        "stream": stream,
        "max_tokens": n,
    }


async def _burst(http: aiohttp.ClientSession, url: str, count: int, n: int, stream: bool = True) -> None:
    async def one(i: int) -> None:
        async with http.post(
            f"{url}/v1/chat/completions", json=_body(n, stream), headers={"X-Request-Id": f"r{i}"}
        ) as r:
            assert r.status == 200
            await r.read()

    await asyncio.gather(*(one(i) for i in range(count)))


def test_formulas() -> None:
    cfg = SimConfig(max_batch=4, ttft_ms=100, itl_ms=10)
    assert service_time_s(cfg, 20) == pytest.approx(0.29)
    assert capacity_rps(cfg, 20) == pytest.approx(4 / 0.29)
    assert capacity_rps(SimConfig(), 20) is None
    # the KV budget caps the batch: 100 tokens of budget, 3 + 20 per sequence -> 4 at once
    kv = SimConfig(max_batch=16, ttft_ms=100, itl_ms=10, kv_budget_tokens=100)
    assert capacity_rps(kv, 20, prompt_tokens=3) == pytest.approx(4 / 0.29)
    slope = SimConfig(max_batch=4, ttft_ms=100, itl_ms=10, itl_slope_ms=1)
    assert service_time_s(slope, 20) == pytest.approx(0.1 + 19 * 0.014)


async def test_batch_queues_fifo_on_the_ideal_timeline(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(max_batch=2, ttft_ms=20, itl_ms=5)
    await _burst(http, sim.url, 6, 5)
    recs = sorted(sim.truth.values(), key=lambda r: r.arrival_ns)
    assert all(r.queue_ns is not None for r in recs)
    service = (20 + 4 * 5) * 1_000_000
    # admission times are exact multiples of the service time after the first arrivals (ideal timeline)
    starts = sorted(r.arrival_ns + r.queue_ns for r in recs)
    t0 = recs[0].arrival_ns
    waves = [round((s - t0) / service) for s in starts]
    assert waves == [0, 0, 1, 1, 2, 2]
    for r in recs:  # each first chunk is due TTFT after admission, and the stream takes S in all
        start = r.arrival_ns + r.queue_ns
        assert r.due_ns[0] == start + 20_000_000
        assert r.due_ns[-1] == start + service
    assert sim.stats()["capacity"]["max_waiting"] == 4
    assert sim.stats()["capacity"]["running"] == 0


async def test_itl_grows_with_the_batch(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(max_batch=3, ttft_ms=10, itl_ms=4, itl_slope_ms=2)
    await _burst(http, sim.url, 3, 6)
    gaps = []
    for r in sim.truth.values():
        gaps += [b - a for a, b in zip(r.due_ns, r.due_ns[1:], strict=False)]
    # three running sequences: 4 + 2 * 3 = 10 ms per step (the last ones may see a smaller batch)
    assert max(gaps) == 10_000_000
    assert min(gaps) >= 6_000_000


async def test_kv_budget_caps_admission(make_sim: Any, http: aiohttp.ClientSession) -> None:
    # each request holds 3 prompt + 5 output = 8 tokens; 20 tokens of budget -> 2 at once
    sim = await make_sim(ttft_ms=20, itl_ms=5, kv_budget_tokens=20)
    await _burst(http, sim.url, 4, 5)
    queued = [r.queue_ns for r in sim.truth.values()]
    assert sorted(q > 0 for q in queued) == [False, False, True, True]
    assert sim.stats()["capacity"]["max_waiting"] == 2


async def test_whole_responses_hold_a_slot(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(max_batch=1, ttft_ms=20, itl_ms=5)
    await _burst(http, sim.url, 3, 3, stream=False)
    assert sorted(r.queue_ns > 0 for r in sim.truth.values()) == [False, True, True]


async def test_client_leaving_while_queued_frees_nothing_twice(
    make_sim: Any, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(max_batch=1, ttft_ms=50, itl_ms=5)
    keep = asyncio.ensure_future(_burst(http, sim.url, 1, 20))
    await asyncio.sleep(0.02)
    with pytest.raises(TimeoutError):
        async with http.post(
            f"{sim.url}/v1/chat/completions",
            json=_body(5),
            timeout=aiohttp.ClientTimeout(total=0.05),
        ) as r:
            await r.read()
    await keep
    await _burst(http, sim.url, 2, 2)
    cap = sim.stats()["capacity"]
    assert cap["running"] == 0 and cap["waiting"] == 0


async def test_metrics_report_the_queue(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(max_batch=1, ttft_ms=200, itl_ms=5)
    task = asyncio.ensure_future(_burst(http, sim.url, 3, 2))
    await asyncio.sleep(0.1)
    async with http.get(f"{sim.url}/metrics") as r:
        text = await r.text()
    assert 'vllm:num_requests_waiting{model_name="sim-model"} 2' in text
    await task
