"""Minimal raw ``asyncio.Protocol`` streaming reader (uvloop): the floor below ``uvloop_reader.py``.

No HTTP library at all: one kept-alive connection per slot, the request written as pre-encoded bytes, and per
``data_received`` one clock reading and a count of ``data: {`` in the bytes. The end of a response is found by
the chunked terminator ``0\\r\\n\\r\\n`` (the simulator streams chunked). No JSON, no HTTP parsing, no SSE framing:
what is left is the event loop and the sockets. Same options and output JSON as ``uvloop_reader.py``.

    python protocol_reader.py --url http://127.0.0.1:PORT --parallel 64 --number 2000 --max-tokens 256 --out r.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover - the reader still works, just slower
    uvloop = None

_clock = time.perf_counter_ns


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] | None = None
        self.first = self.last = self.events = 0
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        t = _clock()
        n = data.count(b"data: {")
        if n:
            if not self.first:
                self.first = t
            self.last = t
            self.events += n
        end = (self.tail + data[-16:])[-16:]
        self.tail = end
        if end.endswith(b"\r\n0\r\n\r\n") and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("closed"))


async def _main(args: argparse.Namespace) -> dict[str, object]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
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
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    out: list[tuple[int, int, int, int]] = []
    remaining = args.number

    async def worker() -> None:
        nonlocal remaining
        conn: _Conn | None = None
        while remaining > 0:
            remaining -= 1
            if conn is None or conn.transport is None or conn.transport.is_closing():
                _, conn = await loop.create_connection(_Conn, host, port)
            conn.first = conn.last = conn.events = 0
            conn.tail = b""
            conn.done = loop.create_future()
            start = _clock()
            assert conn.transport is not None
            conn.transport.write(request)
            try:
                await conn.done
            except ConnectionError:
                conn = None
                continue
            out.append((start, conn.first, conn.last, conn.events))
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.parallel)))
    wall = time.perf_counter() - t0
    ttft = [(f - s) / 1e6 for s, f, _, _ in out if f]
    e2e = [(last - s) / 1e6 for s, _, last, _ in out if last]
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
