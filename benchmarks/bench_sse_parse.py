"""Per-event cost of the SSE decoder + OpenAI chat parse (the engine's per-chunk hot path, no network).

Feeds a realistic vLLM-style stream (one token per event, ~180-byte chunks, reads of one event each and of
many events) and reports microseconds per event. Run: ``python benchmarks/bench_sse_parse.py``.
"""

from __future__ import annotations

import json
import time

import orjson

from evalscope.engine.protocols import get_protocol
from evalscope.engine.protocols.base import EV_TOKEN, StreamState
from evalscope.engine.sse import SSEDecoder


def make_stream(n_tokens: int) -> list[bytes]:
    events = []
    for i in range(n_tokens):
        obj = {
            "id": "chatcmpl-0123456789abcdef",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "sim-model",
            "choices": [{"index": 0, "delta": {"content": f" word{i % 97}"}, "logprobs": None, "finish_reason": None}],
        }
        events.append(b"data: " + orjson.dumps(obj) + b"\n\n")
    events.append(b"data: " + orjson.dumps({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": n_tokens}}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def run(reads: list[bytes], repeat: int) -> float:
    proto = get_protocol("openai")
    clock = time.perf_counter_ns
    n_events = 0
    t0 = time.perf_counter()
    for _ in range(repeat):
        dec = SSEDecoder()
        st = StreamState(False)
        for chunk in reads:
            now = clock()
            for _n, data in dec.feed(chunk):
                if proto.parse_event(data, st) & EV_TOKEN:
                    n_events += 1
                    _ = now
    dt = time.perf_counter() - t0
    return dt / n_events * 1e6


def main() -> None:
    events = make_stream(256)
    one_per_read = events
    joined = b"".join(events)
    batched = [joined[i : i + 4096] for i in range(0, len(joined), 4096)]
    rows = {
        "one_event_per_read_us": run(one_per_read, 400),
        "4KiB_reads_us": run(batched, 400),
    }
    print(f"{'case':<28}{'us/event':>10}")
    for k, v in rows.items():
        print(f"{k:<28}{v:>10.2f}")
    print(json.dumps({"bench": "sse_parse", **{k: round(v, 3) for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
