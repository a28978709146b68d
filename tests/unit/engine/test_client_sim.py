"""Client.send against the simulator: fields, every fault kind, cancellation, preflight hints."""

from __future__ import annotations

import asyncio
import socket

import pytest

from evalscope.engine import Client, Request, Timeouts
from evalscope.engine.preflight import preflight
from evalscope.errors import EndpointError
from evalscope.sim import SimConfig, SimServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("any_transport")]


async def test_ok_stream_record() -> None:
    async with SimServer(SimConfig(ttft_ms=20, itl_ms=2, seed=1), port=0) as sim:
        async with Client(sim.url, "sim-model", keep_text=True, send_request_id=True) as c:
            rec = await c.send(Request(request_id="r1", prompt="hello there", max_tokens=8))
    assert rec.ok, rec.error
    assert rec.completion_tokens == 8 and rec.token_source == "usage"
    assert rec.prompt_tokens and rec.prompt_tokens > 0
    assert rec.sent_ns <= rec.first_byte_ns <= rec.first_token_ns <= rec.last_token_ns <= rec.end_ns  # type: ignore[operator]
    assert rec.first_content_ns == rec.first_token_ns
    assert len(rec.event_ns) == rec.n_events == 8
    assert rec.finish_reason == "length"
    assert rec.text and len(rec.text.split()) == 8
    assert rec.ttft_ns() is not None and rec.ttft_ns() >= 15_000_000  # type: ignore[operator]


async def test_reasoning_and_multi_token_chunks() -> None:
    cfg = SimConfig(ttft_ms=1, itl_ms=1, reasoning_tokens=4, tokens_per_chunk=2)
    async with SimServer(cfg, port=0) as sim:
        async with Client(sim.url, "sim-model", keep_text=True, continuous_usage=True) as c:
            rec = await c.send(Request(prompt="x", max_tokens=6))
    assert rec.ok, rec.error
    assert rec.reasoning
    assert rec.first_content_ns is not None and rec.first_token_ns is not None
    assert rec.first_content_ns > rec.first_token_ns
    assert sum(rec.event_tokens) == rec.completion_tokens


async def test_non_stream_and_completions_and_embeddings() -> None:
    async with SimServer(SimConfig(ttft_ms=1, itl_ms=0), port=0) as sim:
        async with Client(sim.url, "sim-model", stream=False, keep_text=True) as c:
            rec = await c.send(Request(prompt="x", max_tokens=5))
        assert rec.ok and rec.completion_tokens == 5 and rec.text
        async with Client(sim.url + "/v1", "sim-model", api="openai-completions", keep_text=True) as c:
            rec = await c.send(Request(prompt="x y z", max_tokens=3))
        assert rec.ok and rec.completion_tokens == 3
        async with Client(sim.url, "sim-model", api="openai-embeddings") as c:
            rec = await c.send(Request(prompt="x y z"))
        assert rec.ok and rec.prompt_tokens


FAULTS = [
    ({"error_rate": 1.0}, "http_status"),
    ({"rate_429": 1.0}, "http_status"),
    ({"drop_rate": 1.0}, "incomplete_stream"),
    ({"malformed_rate": 1.0}, "malformed_stream"),
    ({"stall_rate": 1.0}, "read_timeout"),
    ({"no_done_rate": 1.0}, "incomplete_stream"),
    ({"error_event_rate": 1.0}, "server_error_event"),
]


@pytest.mark.parametrize(
    ("knob", "kind"), FAULTS, ids=[k for k, _ in [(next(iter(f)), 0) for f, _ in FAULTS]]
)
async def test_every_fault_maps_to_its_kind(knob: dict[str, float], kind: str) -> None:
    cfg = SimConfig(ttft_ms=5, itl_ms=1, retry_after=3, **knob)
    async with SimServer(cfg, port=0) as sim:
        async with Client(sim.url, "sim-model", timeouts=Timeouts(connect_s=2, read_s=0.5)) as c:
            rec = await asyncio.wait_for(c.send(Request(prompt="x", max_tokens=20)), 10)
    assert rec.status == "error"
    assert rec.error is not None and rec.error.kind == kind, rec.error
    if "rate_429" in knob:
        assert rec.error.http_status == 429 and rec.error.retry_after_s == 3
    if "error_rate" in knob:
        assert rec.error.http_status == 500


async def test_connection_refused_is_connect_error() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    async with Client(f"http://127.0.0.1:{port}", "m") as c:
        rec = await c.send(Request(prompt="x"))
    assert rec.error is not None and rec.error.kind == "connect"


async def test_cancel_hands_record_to_on_cancel() -> None:
    got = []
    async with SimServer(SimConfig(ttft_ms=5, itl_ms=50), port=0) as sim:
        async with Client(sim.url, "sim-model") as c:
            task = asyncio.ensure_future(c.send(Request(prompt="x", max_tokens=100), on_cancel=got.append))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert len(got) == 1 and got[0].status == "cancelled" and got[0].n_events >= 1


async def test_preflight_hints() -> None:
    async with SimServer(SimConfig(api_key="sk-right", models=["a", "b"]), port=0) as sim:
        async with Client(sim.url, "a", api_key="sk-wrong") as c:
            with pytest.raises(EndpointError, match="API key"):
                await preflight(c)
        async with Client(sim.url, "zzz", api_key="sk-right") as c:
            with pytest.raises(EndpointError, match="served models: a, b"):
                await preflight(c)
        async with Client(sim.url, "", api_key="sk-right") as c:
            res = await preflight(c)
            assert c.model == "a" and res.served_models == ["a", "b"]
        async with Client(sim.url + "/v2/chat/completions", "a", api_key="sk-right") as c:
            with pytest.raises(EndpointError, match="404"):
                await preflight(c)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    async with Client(f"http://127.0.0.1:{port}", "a") as c:
        with pytest.raises(EndpointError, match="refused"):
            await preflight(c)
