"""Minimal uvloop + aiohttp streaming reader: the floor of client CPU per streamed event in Python.

It does only what any load tester must: keep N streams open, read each SSE body, count the events and take
one clock reading per body chunk (first, last). No JSON parsing, no tokenizer, no live view. Its own TTFT,
inter-token latency and E2E are written as JSON so run_peers.py compares it with the simulator's truth like
any other tool.

    python uvloop_reader.py --url http://127.0.0.1:PORT --parallel 64 --number 2000 --max-tokens 256 --out r.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp

try:
    import uvloop
except ImportError:  # pragma: no cover - the reader still works, just slower
    uvloop = None


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, out: list[tuple[int, int, int, int]]
) -> None:
    start = time.perf_counter_ns()
    first = last = 0
    events = 0
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
        if resp.status != 200:
            await resp.read()
            return
        async for chunk in resp.content.iter_any():
            t = time.perf_counter_ns()
            n = chunk.count(b"data: {")
            if n:
                if not first:
                    first = t
                last = t
                events += n
    out.append((start, first, last, events))


async def _main(args: argparse.Namespace) -> dict[str, object]:
    url = args.url.rstrip("/") + "/v1/chat/completions"
    prompt = " ".join(f"w{i}" for i in range(args.prompt_words))
    body = json.dumps(
        {
            "model": args.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": args.max_tokens,
            "min_tokens": args.max_tokens,
            "ignore_eos": True,
            "stream": True,
        }
    ).encode()
    out: list[tuple[int, int, int, int]] = []
    remaining = args.number
    connector = aiohttp.TCPConnector(limit=args.parallel)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await _one(session, url, body, out)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.parallel)))
        wall = time.perf_counter() - t0
    ttft = [(f - s) / 1e6 for s, f, _, _ in out if f]
    e2e = [(last - s) / 1e6 for s, _, last, _ in out if last]
    # per-request mean gap between body chunks carrying events (events/chunk is 1 unless reads coalesce)
    itl = [(last - f) / 1e6 / (n - 1) for s, f, last, n in out if n > 1]

    def stats(xs: list[float]) -> dict[str, float | None]:
        return {"mean": statistics.fmean(xs) if xs else None, "p50": statistics.median(xs) if xs else None}

    return {
        "requests": len(out),
        "events": sum(n for *_, n in out),
        "wall_s": wall,
        "rps": len(out) / wall if wall else None,
        "ttft": stats(ttft),
        "itl": stats(itl),
        "e2e_latency": stats(e2e),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="base URL of the server (without /v1)")
    ap.add_argument("--model", default="sim-model")
    ap.add_argument("--parallel", type=int, default=64)
    ap.add_argument("--number", type=int, default=2000)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--prompt-words", type=int, default=100)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if uvloop is not None:
        uvloop.install()
    result = asyncio.run(_main(args))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
