"""Client against real servers' connection habits (issue 9): request ids, and kept-alive connections the server
closes under us.

The rule: a request whose REUSED connection the server closed before any byte of the reply was never
processed; it is resent once on a fresh connection and counted in ``reconnects``, not as a failure. Anything
else (a fresh connection, a reply already begun) stays a failure.
"""

from __future__ import annotations

import asyncio
from time import perf_counter_ns
from typing import Any

import pytest
from aiohttp import web

from evalscope.engine import Client, Request
from evalscope.engine.preflight import preflight
from evalscope.engine.records import SIM_ID_HEADER
from evalscope.sim import SimConfig, SimServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("any_transport")]

FAST: dict[str, Any] = {"ttft_ms": 2, "itl_ms": 1, "output_tokens": 4}


async def test_no_request_id_header_reaches_a_real_server() -> None:
    """A server that is not our simulator gets neither X-Request-Id nor our own id header."""
    seen: list[dict[str, str]] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    async def chat(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response(
            {
                "choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            }
        )

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with Client(f"http://127.0.0.1:{port}", "m", stream=False) as c:
            await preflight(c)
            assert c.is_simulator is False
            rec = await c.send(Request(request_id=7, prompt="hi", max_tokens=1))
    finally:
        await runner.cleanup()
    assert rec.ok, rec.error
    assert len(seen) == 3  # models, preflight probe, the request
    for h in seen:
        assert not {k.lower() for k in h} & {"x-request-id", SIM_ID_HEADER.lower()}, h


async def test_simulator_is_identified_and_keys_truth_by_our_ids() -> None:
    async with SimServer(SimConfig(**FAST)) as sim:
        async with Client(sim.url, "sim-model") as c:
            assert c.is_simulator is None
            assert await c.identify() is True
            rec = await c.send(Request(request_id="mine-1", prompt="hi", max_tokens=2))
        assert rec.ok, rec.error
        assert "mine-1" in sim.truth


async def test_uuid_only_request_ids_like_llama_cpp_python() -> None:
    """The sim answers 400 with an empty body to a non-UUID X-Request-Id: our client sends none, so it works.

    Before the fix every request carried ``X-Request-Id: <id>`` (``preflight``, ``0``...): preflight got 400.
    """
    async with SimServer(SimConfig(uuid_request_ids=True, **FAST)) as sim:
        async with Client(sim.url, "sim-model") as c:
            await preflight(c)
            recs = [await c.send(Request(request_id=i, prompt="hi", max_tokens=2)) for i in range(3)]
        assert all(r.ok for r in recs), [r.error for r in recs]
        assert {"preflight", "0", "1", "2"} <= set(sim.truth)


async def test_idle_reaped_connection_is_resent_once_and_counted() -> None:
    """The server reaps an idle kept-alive connection; the client's next request crosses the FIN.

    ``fin_delay_ms`` holds the FIN back, so the request is written on the dead connection every time.
    """
    cfg = SimConfig(idle_timeout_ms=20, fin_delay_ms=5000, **FAST)
    async with SimServer(cfg) as sim:
        async with Client(sim.url, "sim-model", send_request_id=True) as c:
            first = await c.send(Request(request_id="a", prompt="hi", max_tokens=4))
            await asyncio.sleep(0.1)  # longer than the idle timeout: the server reaps the connection
            scheduled = perf_counter_ns()
            second = await c.send(Request(request_id="b", prompt="hi", max_tokens=4, scheduled_ns=scheduled))
        stats = sim.stats()["connections"]
        truth = dict(sim.truth)
    assert first.ok and first.reconnects == 0
    assert second.ok, second.error
    assert second.reconnects == 1
    assert stats["reaped"] >= 1 and stats["lost"] == 1
    # the server served "b" once (the lost attempt never reached its handler)
    assert truth["b"].outcome == "ok"
    # latency from schedule keeps the lost attempt; TTFT / E2E start at the resend
    assert second.scheduled_ns == scheduled
    assert second.sent_ns > scheduled
    assert second.first_token_ns is not None and second.first_token_ns > second.sent_ns
    assert second.to_dict()["reconnects"] == 1


async def test_failure_after_reply_bytes_is_not_resent() -> None:
    """A reused connection dropped mid-stream (the reply had begun) stays a failure: no resend."""
    cfg = SimConfig(drop_rate=1.0, **FAST)
    async with SimServer(cfg) as sim:
        async with Client(sim.url, "sim-model", send_request_id=True) as c:
            await c.prewarm(1)  # leaves a kept-alive connection in the pool: the next request reuses it
            rec = await c.send(Request(request_id="d", prompt="hi", max_tokens=4))
        n_requests = sim.stats()["requests"]
    assert not rec.ok and rec.error is not None
    assert rec.error.kind == "incomplete_stream"
    assert rec.reconnects == 0
    assert n_requests == 1


async def test_partial_status_line_then_close_is_not_resent() -> None:
    """Bytes of the reply arrived (half a status line) before the close: the server may have processed it."""
    served = 0
    body = (
        b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                served += 1
                if served == 1:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%b"
                        % (len(body), body)
                    )
                    await writer.drain()
                else:
                    writer.write(b"HTTP/1.1 20")
                    await writer.drain()
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Client(f"http://127.0.0.1:{port}", "m", send_request_id=False) as c:
            ok = await c.send(Request(prompt="hi", max_tokens=1))
            bad = await c.send(Request(prompt="hi", max_tokens=1))
    finally:
        server.close()
        await server.wait_closed()
    assert ok.ok, ok.error
    assert not bad.ok and bad.reconnects == 0
    assert served == 2


async def test_fresh_connection_failure_is_not_resent() -> None:
    """A bounded worker pool with a full queue drops a NEW connection at accept: that says something about the
    server, so it stays a failure (never resent)."""
    cfg = SimConfig(max_workers=1, worker_queue=0, ttft_ms=300, itl_ms=1, output_tokens=2)
    async with SimServer(cfg) as sim:
        async with Client(sim.url, "sim-model", send_request_id=False) as c:
            slow = asyncio.ensure_future(c.send(Request(prompt="hi", max_tokens=2)))
            await asyncio.sleep(0.05)  # the first connection owns the only worker
            dropped = await c.send(Request(prompt="hi", max_tokens=2))
            first = await slow
        stats = sim.stats()["connections"]
    assert first.ok, first.error
    assert not dropped.ok and dropped.error is not None and dropped.error.kind == "connect"
    assert dropped.reconnects == 0
    assert stats["dropped"] >= 1


async def test_announced_closes_are_neither_failures_nor_reconnects() -> None:
    """Keep-alive limit and ``Connection: close`` replies are announced: the client never reuses them."""
    cfg = SimConfig(keepalive_max_requests=2, close_rate=0.3, seed=3, **FAST)
    async with SimServer(cfg) as sim:
        async with Client(sim.url, "sim-model", send_request_id=False) as c:
            recs = [await c.send(Request(prompt="hi", max_tokens=2)) for _ in range(10)]
        stats = sim.stats()["connections"]
    assert all(r.ok for r in recs), [r.error for r in recs]
    assert sum(r.reconnects for r in recs) == 0
    assert stats["closing_replies"] >= 5 and stats["opened"] >= 5


async def test_bounded_workers_make_connections_wait_not_fail() -> None:
    """Connections beyond the worker pool wait unread until a worker frees (cpp-httplib's queue)."""
    cfg = SimConfig(max_workers=2, keepalive_max_requests=1, ttft_ms=20, itl_ms=1, output_tokens=2)
    async with SimServer(cfg) as sim:
        async with Client(sim.url, "sim-model", send_request_id=False) as c:
            recs = await asyncio.gather(*(c.send(Request(prompt="hi", max_tokens=2)) for _ in range(6)))
        for _ in range(100):  # the server learns of the last closes a loop turn or two later
            if sim.stats()["connections"]["busy_workers"] == 0:
                break
            await asyncio.sleep(0.01)
        stats = sim.stats()["connections"]
    assert all(r.ok for r in recs), [r.error for r in recs]
    assert stats["queued"] >= 3 and stats["busy_workers"] == 0
    e2e = sorted(r.e2e_ns() or 0 for r in recs)
    assert e2e[-1] >= 2 * 20_000_000  # the last ones waited for a worker
