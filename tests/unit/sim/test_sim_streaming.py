"""Stream format: chunks, usage (final and continuous), reasoning, tokens per chunk, timestamps, truth."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import orjson
import pytest

from evalscope.sim import count_tokens

pytestmark = pytest.mark.timeout(30)


def chat(max_tokens: int | None = 5, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "sim-model",
        "messages": [{"role": "user", "content": "hello there friend"}],
        "stream": True,
        **extra,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


async def post_stream(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], **kw: Any
) -> tuple[Any, bytes]:
    async with http.post(url, json=body, **kw) as r:
        return r, await r.read()


async def test_chat_stream_format(make_sim: Any, http: aiohttp.ClientSession, sse: Any, chunks: Any) -> None:
    sim = await make_sim()
    r, raw = await post_stream(http, f"{sim.url}/v1/chat/completions", chat(5))
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = sse(raw)
    assert events[-1] == b"[DONE]"
    objs = chunks(events)
    assert len(objs) == 5  # one token per chunk, finish_reason on the last one, no usage chunk
    assert all(o["object"] == "chat.completion.chunk" and o["id"] == r.headers["x-request-id"] for o in objs)
    assert objs[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [o["choices"][0]["finish_reason"] for o in objs] == [None] * 4 + ["length"]
    assert all("usage" not in o for o in objs)
    text = "".join(o["choices"][0]["delta"]["content"] for o in objs)
    assert count_tokens(text) == 5


async def test_include_usage_final_chunk(
    make_sim: Any, http: aiohttp.ClientSession, sse: Any, chunks: Any
) -> None:
    sim = await make_sim()
    body = chat(3, stream_options={"include_usage": True})
    _, raw = await post_stream(http, f"{sim.url}/v1/chat/completions", body)
    objs = chunks(sse(raw))
    assert objs[-1]["choices"] == []
    assert objs[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert all("usage" not in o for o in objs[:-1])


async def test_continuous_usage(make_sim: Any, http: aiohttp.ClientSession, sse: Any, chunks: Any) -> None:
    sim = await make_sim(tokens_per_chunk=2)
    body = chat(5, stream_options={"include_usage": True, "continuous_usage_stats": True})
    _, raw = await post_stream(http, f"{sim.url}/v1/chat/completions", body)
    objs = chunks(sse(raw))
    running = [o["usage"]["completion_tokens"] for o in objs]
    assert running == [2, 4, 5, 5]
    assert all(o["usage"]["prompt_tokens"] == 3 for o in objs)


async def test_completions_stream(make_sim: Any, http: aiohttp.ClientSession, sse: Any, chunks: Any) -> None:
    sim = await make_sim()
    body = {"model": "sim-model", "prompt": "x y", "max_tokens": 3, "stream": True}
    _, raw = await post_stream(http, f"{sim.url}/v1/completions", body)
    objs = chunks(sse(raw))
    assert [o["object"] for o in objs] == ["text_completion"] * 3
    assert count_tokens("".join(o["choices"][0]["text"] for o in objs)) == 3


async def test_reasoning_phase(make_sim: Any, http: aiohttp.ClientSession, sse: Any, chunks: Any) -> None:
    sim = await make_sim(reasoning_tokens=4)
    body = chat(3, stream_options={"include_usage": True})
    _, raw = await post_stream(http, f"{sim.url}/v1/chat/completions", body)
    objs = chunks(sse(raw))
    deltas = [o["choices"][0]["delta"] for o in objs[:-1]]
    assert [("reasoning_content" in d, "content" in d) for d in deltas] == [(True, False)] * 4 + [
        (False, True)
    ] * 3
    assert objs[-1]["usage"]["completion_tokens"] == 7
    assert objs[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}
    async with http.post(f"{sim.url}/v1/chat/completions", json={**body, "stream": False}) as r:
        msg = (await r.json())["choices"][0]["message"]
    assert count_tokens(msg["reasoning_content"]) == 4 and count_tokens(msg["content"]) == 3


async def test_tokens_per_chunk_and_schedule(
    make_sim: Any, http: aiohttp.ClientSession, sse: Any, chunks: Any
) -> None:
    sim = await make_sim(tokens_per_chunk=3, ttft_ms=10.0, itl_ms=2.0)
    _r, raw = await post_stream(
        http, f"{sim.url}/v1/chat/completions", chat(7), headers={"X-Request-Id": "req-1"}
    )
    objs = chunks(sse(raw))
    assert [count_tokens(o["choices"][0]["delta"]["content"]) for o in objs] == [3, 3, 1]
    rec = sim.truth["req-1"]
    assert list(rec.chunk_tokens) == [3, 3, 1]
    assert rec.due_ns[0] - rec.arrival_ns == 10_000_000
    assert [b - a for a, b in zip(rec.due_ns, rec.due_ns[1:], strict=False)] == [6_000_000, 2_000_000]
    assert all(s >= d for s, d in zip(rec.chunk_ns, rec.due_ns, strict=True))
    assert rec.first_token_ns == rec.chunk_ns[0] and rec.end_ns is not None and rec.end_ns >= rec.chunk_ns[-1]
    assert (rec.prompt_tokens, rec.completion_tokens, rec.outcome) == (3, 7, "ok")


async def test_request_id_and_timestamps(
    make_sim: Any, http: aiohttp.ClientSession, sse: Any, chunks: Any
) -> None:
    sim = await make_sim(emit_timestamps=True)
    r, raw = await post_stream(
        http, f"{sim.url}/v1/chat/completions", chat(4), headers={"X-Request-Id": "abc"}
    )
    assert r.headers["x-request-id"] == "abc"
    objs = chunks(sse(raw))
    assert all(o["id"] == "abc" for o in objs)
    assert [o["sim_ns"] for o in objs] == list(sim.truth["abc"].chunk_ns)


async def test_output_length_rules(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(output_tokens=3)
    url = f"{sim.url}/v1/completions"

    async def n_tokens(**kw: Any) -> tuple[int, str]:
        async with http.post(url, json={"prompt": "p", **kw}) as r:
            d = await r.json()
        return d["usage"]["completion_tokens"], d["choices"][0]["finish_reason"]

    assert await n_tokens() == (3, "stop")  # from the configured distribution
    assert await n_tokens(max_tokens=8) == (3, "stop")  # EOS comes first
    assert await n_tokens(max_tokens=8, ignore_eos=True) == (8, "length")
    assert await n_tokens(max_completion_tokens=2) == (2, "length")
    assert await n_tokens(max_tokens=8, min_tokens=6) == (6, "stop")


async def test_output_distributions(make_sim: Any, http: aiohttp.ClientSession) -> None:
    for dist in ("uniform", "normal"):
        sim = await make_sim(output_tokens=20, output_dist=dist, output_spread=0.5, seed=3)
        seen = set()
        for _ in range(20):
            async with http.post(f"{sim.url}/v1/completions", json={"prompt": "p"}) as r:
                seen.add((await r.json())["usage"]["completion_tokens"])
        assert len(seen) > 3 and min(seen) >= 1
        if dist == "uniform":
            assert min(seen) >= 10 and max(seen) <= 30


async def test_truth_and_stats_http(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    for i in range(3):
        await post_stream(http, f"{sim.url}/v1/chat/completions", chat(2), headers={"X-Request-Id": f"r{i}"})
    async with http.get(f"{sim.url}/sim/truth") as r:
        recs = orjson.loads(await r.read())
    assert [x["request_id"] for x in recs] == ["r0", "r1", "r2"]
    assert recs[0]["chunk_tokens"] == [1, 1] and len(recs[0]["chunk_ns"]) == 2
    async with http.get(f"{sim.url}/sim/truth?since={recs[1]['seq']}&clear=1") as r:
        assert [x["request_id"] for x in orjson.loads(await r.read())] == ["r2"]
    assert len(sim.truth) == 0
    async with http.get(f"{sim.url}/sim/stats?reset=1") as r:
        stats = await r.json()
    assert stats["requests"] == 3 and stats["completion_tokens"] == 6 and stats["chunks"] == 6
    assert stats["by_endpoint"] == {"chat": 3} and stats["by_status"] == {"200": 3}
    assert stats["lag"]["p50_us"] is not None
    assert sim.stats()["requests"] == 0


async def test_truth_cap_and_disable(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(truth_max=2)
    for _ in range(5):
        await post_stream(http, f"{sim.url}/v1/chat/completions", chat(1))
    assert list(sim.truth) == ["sim-4", "sim-5"]
    off = await make_sim(truth=False)
    await post_stream(http, f"{off.url}/v1/chat/completions", chat(1))
    assert len(off.truth) == 0 and off.stats()["requests"] == 1


async def test_client_disconnect_is_recorded(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(itl_ms=20.0)
    async with http.post(
        f"{sim.url}/v1/chat/completions", json=chat(100), headers={"X-Request-Id": "gone"}
    ) as r:
        await r.content.readline()
    # leaving the context without reading releases (closes) the connection mid-stream
    for _ in range(100):
        if sim.truth["gone"].outcome != "pending":
            break
        await __import__("asyncio").sleep(0.02)
    rec = sim.truth["gone"]
    assert rec.outcome == "client_closed" and rec.completion_tokens < 100
    assert sim.stats()["active"] == 0 and sim.stats()["client_closed"] == 1


async def test_prefill_cost_and_jitter(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(ttft_ms=5.0, ttft_per_token_ms=1.0, itl_ms=2.0)
    await post_stream(http, f"{sim.url}/v1/chat/completions", chat(3), headers={"X-Request-Id": "p"})
    rec = sim.truth["p"]
    assert rec.due_ns[0] - rec.arrival_ns == 8_000_000  # 5 ms + 3 prompt tokens x 1 ms
    jit = await make_sim(ttft_ms=5.0, itl_ms=2.0, jitter=0.5, seed=9)
    await post_stream(http, f"{jit.url}/v1/chat/completions", chat(30), headers={"X-Request-Id": "j"})
    due = jit.truth["j"].due_ns
    gaps = [b - a for a, b in itertools.pairwise(due)]
    assert all(1_000_000 <= g <= 3_000_000 for g in gaps) and len(set(gaps)) > 10
    assert 2_500_000 <= due[0] - jit.truth["j"].arrival_ns <= 7_500_000
