"""httptools against the hand-written HTTP/1.1 response parser, on the engine's own workload (no network).

Two costs matter to the built-in transport (``evalscope.engine.h1``): per socket read of a streamed response
(one chunked frame carrying one SSE event, the norm for token streams; and 4 KiB reads carrying many frames),
and per response head (status line + ~8 headers, once per request). Each parser is driven the way the
transport would drive it: the body bytes of a read are collected (httptools: ``on_body`` callbacks) and
handed on once. Prints microseconds per read and per head, and which parser is faster.

Run: ``python benchmarks/bench_h1_parser.py`` (``--quick`` for fewer repeats). Needs ``pip install httptools``.
"""

from __future__ import annotations

import argparse
import json
import time

import orjson
from h1_handwritten import ResponseParser  # type: ignore[import-not-found]

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\nDate: Fri, 04 Dec 2026 18:00:00 GMT\r\nServer: Python/3.12 aiohttp/3.11\r\n"
    b"X-Request-Id: chatcmpl-0123456789abcdef\r\nConnection: keep-alive\r\n\r\n"
)


def make_frames(n: int) -> list[bytes]:
    frames = []
    for i in range(n):
        obj = {
            "id": "chatcmpl-0123456789abcdef",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "sim-model",
            "choices": [{"index": 0, "delta": {"content": f" word{i % 97}"}, "finish_reason": None}],
        }
        ev = b"data: " + orjson.dumps(obj) + b"\n\n"
        frames.append(b"%x\r\n%b\r\n" % (len(ev), ev))
    ev = b"data: [DONE]\n\n"
    frames.append(b"%x\r\n%b\r\n0\r\n\r\n" % (len(ev), ev))
    return frames


def bench_ours(reads: list[bytes], repeat: int) -> tuple[float, int]:
    sink = 0
    t0 = time.perf_counter()
    for _ in range(repeat):
        p = ResponseParser()
        p.feed(HEAD)
        for r in reads:
            sink += len(p.feed(r))
        assert p.complete
    return time.perf_counter() - t0, sink


class _HT:
    __slots__ = ("body", "complete", "headers")

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.headers: dict[str, str] = {}
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


def bench_httptools(reads: list[bytes], repeat: int) -> tuple[float, int]:
    import httptools

    sink = 0
    t0 = time.perf_counter()
    for _ in range(repeat):
        cb = _HT()
        p = httptools.HttpResponseParser(cb)
        p.feed_data(HEAD)
        body = cb.body
        for r in reads:
            p.feed_data(r)
            if body:
                data = body[0] if len(body) == 1 else b"".join(body)
                body.clear()
                sink += len(data)
        assert cb.complete
    return time.perf_counter() - t0, sink


def bench_heads(repeat: int) -> dict[str, float]:
    import httptools

    full = HEAD + b"0\r\n\r\n"
    t0 = time.perf_counter()
    for _ in range(repeat):
        p = ResponseParser()
        p.feed(full)
        _ = p.headers.get("content-type")
    ours = (time.perf_counter() - t0) / repeat * 1e6
    t0 = time.perf_counter()
    for _ in range(repeat):
        cb = _HT()
        hp = httptools.HttpResponseParser(cb)
        hp.feed_data(full)
        _ = hp.get_status_code(), cb.headers.get("content-type")
    theirs = (time.perf_counter() - t0) / repeat * 1e6
    return {"hand_written_us": round(ours, 3), "httptools_us": round(theirs, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeat = 40 if args.quick else 400
    frames = make_frames(256)
    joined = b"".join(frames)
    batched = [joined[i : i + 4096] for i in range(0, len(joined), 4096)]
    out: dict[str, object] = {}
    for name, reads in (("one_frame_per_read", frames), ("4KiB_reads", batched)):
        best: dict[str, float] = {}
        for label, fn in (("hand_written", bench_ours), ("httptools", bench_httptools)):
            runs = []
            for _ in range(5):
                dt, _sink = fn(reads, repeat)
                runs.append(dt / (repeat * len(reads)) * 1e6)
            best[f"{label}_us_per_read"] = round(min(runs), 3)
        out[name] = best
    out["response_head"] = bench_heads(repeat * 50)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
