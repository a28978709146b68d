"""Client CPU per streamed event of the built-in transport's receive path, with no network and no loop I/O.

One connection object of ``evalscope.engine.h1`` is fed, read by read, the exact bytes of a chunked SSE
response (the vLLM-style chat stream of ``bench_sse_parse.py``: 256 one-token events, a usage event, ``[DONE]``,
the chunked terminator),
one event per read as a server writing each event on its own sends them. Everything a real read runs is
timed: ``data_received`` (the stamp), httptools, the SSE decoder and ``parse_event`` (or, once learned, the
stream's plain-text frame: ``learn_frame``) and the record's stamps.
What it leaves out on purpose is the socket and the event loop, whose cost the peers benchmark
(``benchmarks/peers``) includes: this isolates the Python work per event, so changes to it can be compared
without the machine's noise. Reports the best of ``--rounds`` rounds in µs per event.

Run: ``python benchmarks/bench_h1_receive.py [--responses 200 --rounds 7]``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench_sse_parse import make_stream  # this folder is on the path when a benchmark runs as a script

from evalscope.engine import h1
from evalscope.engine.protocols import get_protocol
from evalscope.engine.protocols.base import StreamState
from evalscope.engine.records import RequestRecord

N_TOKENS = 256
URL = "http://127.0.0.1:9/v1/chat/completions"
HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n"
    b"date: Sat, 05 Dec 2026 07:00:00 GMT\r\nserver: uvicorn\r\n\r\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def response_reads() -> list[bytes]:
    """The reads of one response: the head, then one chunk-framed event per read (bench_sse_parse's stream)."""
    reads = [HEAD, *(_chunk(ev) for ev in make_stream(N_TOKENS))]
    reads[-1] += b"0\r\n\r\n"
    return reads


class _Transport:
    """Accepts the request bytes and drops them (the connection never touches a socket)."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class _Client:
    """The attributes of ``engine.Client`` that a connection reads."""

    protocol = get_protocol("openai")
    url = URL


async def one_round(responses: int, reads: list[bytes]) -> float:
    """CPU µs per token event over ``responses`` responses on one kept-alive connection."""
    loop = asyncio.get_running_loop()
    client: Any = _Client()
    pool = h1.H1Pool(client, URL, None, None)
    conn = h1._Conn(pool)
    conn.connection_made(_Transport())  # type: ignore[arg-type]
    proto = client.protocol
    t0 = time.process_time()
    for _ in range(responses):
        rec = RequestRecord(request_id=1, status="error", scheduled_ns=0, sent_ns=0)
        done: asyncio.Future[None] = loop.create_future()
        ex = h1._Exchange(
            rec, StreamState(False), proto.parse_event, True, proto.continuous_usage, done, proto.text_key
        )
        conn.start(ex, b"", 0.0)
        for r in reads:
            conn.data_received(r)
        if rec.n_events != N_TOKENS or not done.done():
            raise SystemExit(f"the stream was not read whole: {rec.n_events} events")
    return (time.process_time() - t0) / (responses * N_TOKENS) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--responses", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    reads = response_reads()
    best = min(asyncio.run(one_round(a.responses, reads)) for _ in range(a.rounds))
    print(f"receive path: {best:.3f} µs per event (best of {a.rounds} rounds of {a.responses} x {N_TOKENS})")
    print(json.dumps({"bench": "h1_receive", "us_per_event": round(best, 3), "events": N_TOKENS}))


if __name__ == "__main__":
    main()
