"""Every fault kind, observed with a raw aiohttp client, plus determinism of the fault sequence."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

pytestmark = pytest.mark.timeout(30)

BODY = {
    "model": "sim-model",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 6,
    "stream": True,
    "stream_options": {"include_usage": True},
}


async def wait_outcome(sim: Any, rid: str, timeout: float = 5.0) -> str:
    for _ in range(int(timeout / 0.01)):
        if sim.truth[rid].outcome not in ("pending",):
            return str(sim.truth[rid].outcome)
        await asyncio.sleep(0.01)
    return str(sim.truth[rid].outcome)


async def test_http_500(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(error_rate=1.0)
    async with http.post(f"{sim.url}/v1/chat/completions", json=BODY) as r:
        assert r.status == 500
        err = (await r.json())["error"]
    assert err["code"] == 500 and err["type"] == "InternalServerError"
    assert sim.stats()["faults"]["http_500"] == 1


async def test_http_429_retry_after(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(rate_429=1.0, retry_after=2.5)
    async with http.post(f"{sim.url}/v1/completions", json={"prompt": "x"}) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "2.5"
        assert (await r.json())["error"]["code"] == 429
    async with http.post(f"{sim.url}/v1/embeddings", json={"input": "x"}) as r:
        assert r.status == 429


async def test_drop_mid_stream(make_sim: Any, http: aiohttp.ClientSession, sse: Any) -> None:
    sim = await make_sim(drop_rate=1.0)
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{sim.url}/v1/chat/completions", json=BODY, headers={"X-Request-Id": "d"}) as r:
            assert r.status == 200
            async for data in r.content.iter_any():
                received += data
    events = sse(received)
    assert len(events) == 3 and b"[DONE]" not in events  # half of the 6 chunks, then the connection is cut
    assert await wait_outcome(sim, "d") == "drop"
    assert sim.truth["d"].completion_tokens == 3 and sim.truth["d"].fault == "drop"


async def test_drop_non_stream(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(drop_rate=1.0)
    with pytest.raises(aiohttp.ClientError):
        async with http.post(f"{sim.url}/v1/completions", json={"prompt": "x", "max_tokens": 2}) as r:
            await r.read()


async def test_malformed_event(make_sim: Any, http: aiohttp.ClientSession, sse: Any) -> None:
    sim = await make_sim(malformed_rate=1.0)
    async with http.post(f"{sim.url}/v1/chat/completions", json=BODY, headers={"X-Request-Id": "m"}) as r:
        events = sse(await r.read())
    assert (sim.truth["m"].fault, sim.truth["m"].outcome) == ("malformed", "malformed")
    assert events[3] == b"{not json"
    assert events[-1] == b"[DONE]"
    good = [orjson.loads(e) for e in events if e not in (b"{not json", b"[DONE]")]
    assert good[-1]["usage"]["completion_tokens"] == 6  # the stream otherwise completes


async def test_stall_keeps_connection_open(make_sim: Any, http: aiohttp.ClientSession, sse: Any) -> None:
    sim = await make_sim(stall_rate=1.0)
    async with http.post(f"{sim.url}/v1/chat/completions", json=BODY, headers={"X-Request-Id": "s"}) as r:
        got = b""
        while got.count(b"\n\n") < 3:
            got += await r.content.readany()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(r.content.readany(), 0.3)  # nothing more arrives, connection stays open
        assert sim.stats()["active"] == 1
    # the client left: the server notices and releases the stream
    for _ in range(100):
        if sim.stats()["active"] == 0:
            break
        await asyncio.sleep(0.02)
    assert sim.stats()["active"] == 0
    assert sim.truth["s"].outcome == "stall" and sim.truth["s"].completion_tokens == 3


async def test_stall_cap_aborts(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(stall_rate=1.0, stall_max_s=0.2)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(f"{sim.url}/v1/chat/completions", json=BODY) as r:
            await r.read()


async def test_no_done(make_sim: Any, http: aiohttp.ClientSession, sse: Any) -> None:
    sim = await make_sim(no_done_rate=1.0)
    async with http.post(f"{sim.url}/v1/chat/completions", json=BODY, headers={"X-Request-Id": "n"}) as r:
        events = sse(await r.read())  # the body ends cleanly: no exception
    assert sim.truth["n"].outcome == "no_done"
    assert b"[DONE]" not in events
    objs = [orjson.loads(e) for e in events]
    assert len(objs) == 3 and all(o["choices"][0]["finish_reason"] is None for o in objs)
    assert all("usage" not in o for o in objs)


async def test_no_done_single_chunk_has_no_finish_reason(
    make_sim: Any, http: aiohttp.ClientSession, sse: Any
) -> None:
    sim = await make_sim(no_done_rate=1.0)
    async with http.post(f"{sim.url}/v1/chat/completions", json={**BODY, "max_tokens": 1}) as r:
        events = sse(await r.read())
    assert len(events) == 1 and orjson.loads(events[0])["choices"][0]["finish_reason"] is None


async def test_error_event(make_sim: Any, http: aiohttp.ClientSession, sse: Any) -> None:
    sim = await make_sim(error_event_rate=1.0)
    async with http.post(f"{sim.url}/v1/chat/completions", json=BODY, headers={"X-Request-Id": "e"}) as r:
        events = sse(await r.read())
    assert sim.truth["e"].outcome == "error_event" and sim.stats()["faults"]["error_event"] == 1
    assert events[-1] == b"[DONE]"
    err = orjson.loads(events[-2])
    assert (
        set(err) == {"error"}
        and err["error"]["code"] == 500
        and err["error"]["type"]
        and err["error"]["message"]
    )
    assert len(events) == 5  # 3 token chunks, the error, [DONE]


async def test_fault_sequence_is_seeded(make_sim: Any, http: aiohttp.ClientSession) -> None:
    rates = {"error_rate": 0.2, "rate_429": 0.2, "malformed_rate": 0.2, "no_done_rate": 0.2}

    async def run(seed: int) -> list[str | None]:
        sim = await make_sim(seed=seed, jitter=0.5, **rates)
        for i in range(30):
            async with http.post(
                f"{sim.url}/v1/chat/completions", json=BODY, headers={"X-Request-Id": str(i)}
            ) as r:
                await r.read()
        return [sim.truth[str(i)].fault for i in range(30)]

    first = await run(5)
    assert first == await run(5)
    assert first != await run(6)
    assert {"http_500", "http_429", "malformed", "no_done", None} <= set(first)
