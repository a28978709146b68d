"""Client CPU per streamed event: the engine's Client.send versus a plain aiohttp reading loop.

Both read the same simulator stream (zero latency, 256 tokens per request, 64 parallel) from a SimProcess
pinned to CPU 0 while the client runs pinned to CPU 1 (when the machine has two CPUs). CPU time is this
process's user+sys (``resource.getrusage``) over the load, divided by the token-bearing events received.
Run: ``python benchmarks/bench_engine_cpu.py [--requests 2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource

import aiohttp

from evalscope.engine import Client, Request, run
from evalscope.sim import SimConfig, SimProcess


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def closed_loop(n: int, parallel: int, one: object) -> int:
    it = iter(range(n))
    total = 0

    async def worker() -> None:
        nonlocal total
        for i in it:
            got = await one(i)  # type: ignore[operator]
            total += got

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return total


async def bench_engine(url: str, n: int, parallel: int, tokens: int) -> tuple[float, int]:
    async with Client(url, "sim-model") as c:
        await c.send(Request(prompt="warm", max_tokens=2))

        async def one(i: int) -> int:
            rec = await c.send(Request(request_id=i, prompt="hello", max_tokens=tokens))
            assert rec.ok, rec.error
            return rec.n_events

        t0 = cpu_s()
        events = await closed_loop(n, parallel, one)
        return cpu_s() - t0, events


async def bench_plain(url: str, n: int, parallel: int, tokens: int) -> tuple[float, int]:
    """The minimal reader: no SSE framing, no JSON; counts b'data:' occurrences per read."""
    body = json.dumps(
        {
            "model": "sim-model",
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        endpoint = url + "/v1/chat/completions"

        async def one(i: int) -> int:
            count = 0
            async with s.post(endpoint, data=body, headers={"Content-Type": "application/json"}) as r:
                while True:
                    chunk = await r.content.readany()
                    if not chunk:
                        break
                    count += chunk.count(b"data:")
            return count - 2  # usage chunk and [DONE]

        await one(-1)
        t0 = cpu_s()
        events = await closed_loop(n, parallel, one)
        return cpu_s() - t0, events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--parallel", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=256)
    a = ap.parse_args()
    two_cpus = (os.cpu_count() or 1) >= 2
    cfg = SimConfig(ttft_ms=0, itl_ms=0, output_tokens=a.tokens, truth=False)
    rows = {}
    with SimProcess(cfg) as sim:
        if two_cpus:
            os.sched_setaffinity(sim.pid, {0})
            os.sched_setaffinity(0, {1})
        for name, fn in (("plain_aiohttp", bench_plain), ("evalscope_engine", bench_engine)):
            cpu, events = run(fn(sim.url, a.requests, a.parallel, a.tokens))
            rows[name] = {
                "cpu_s": round(cpu, 3),
                "events": events,
                "us_per_event": round(cpu / events * 1e6, 2),
            }
    print(f"{'client':<20}{'events':>10}{'cpu s':>8}{'us/event':>10}")
    for k, v in rows.items():
        print(f"{k:<20}{v['events']:>10}{v['cpu_s']:>8}{v['us_per_event']:>10}")
    print(json.dumps({"bench": "engine_cpu", "pinned": two_cpus, **rows}))


if __name__ == "__main__":
    main()
