"""The simulator's connection habits (sim/conns.py), seen from a plain aiohttp client: each option does what
its real-server counterpart does, and nothing changes when they are off."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from evalscope.engine.records import SIM_ID_HEADER, SIM_MARK_HEADER
from evalscope.sim import SimConfig, SimServer

pytestmark = pytest.mark.timeout(60)

BODY = {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
FAST = {"ttft_ms": 1, "itl_ms": 0}


async def _post(http: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, bytes, dict[str, str]]:
    async with http.post(f"{url}/v1/chat/completions", json=BODY, **kw) as r:  # type: ignore[arg-type]
        return r.status, await r.read(), dict(r.headers)


async def test_defaults_keep_connections_open_and_mark_models() -> None:
    async with SimServer(SimConfig(**FAST)) as sim, aiohttp.ClientSession() as http:
        for _ in range(3):
            status, _, headers = await _post(http, sim.url)
            assert status == 200 and headers.get("Connection", "").lower() != "close"
        async with http.get(f"{sim.url}/v1/models") as r:
            assert r.headers[SIM_MARK_HEADER] == "1"
        assert "connections" not in sim.stats()


async def test_truth_keyed_by_our_header_then_x_request_id() -> None:
    async with SimServer(SimConfig(**FAST)) as sim, aiohttp.ClientSession() as http:
        await _post(http, sim.url, headers={SIM_ID_HEADER: "ours", "X-Request-Id": "theirs"})
        await _post(http, sim.url, headers={"X-Request-Id": "theirs-only"})
        assert {"ours", "theirs-only"} <= set(sim.truth)


async def test_keepalive_max_requests_closes_after_n() -> None:
    async with SimServer(SimConfig(keepalive_max_requests=3, **FAST)) as sim, aiohttp.ClientSession() as http:
        conns = [(await _post(http, sim.url))[2].get("Connection") for _ in range(6)]
        stats = sim.stats()["connections"]
    assert conns == [None, None, "close", None, None, "close"]
    assert stats["opened"] == 2 and stats["closing_replies"] == 2


async def test_close_rate_one_closes_every_reply() -> None:
    async with SimServer(SimConfig(close_rate=1.0, **FAST)) as sim, aiohttp.ClientSession() as http:
        conns = [(await _post(http, sim.url))[2].get("Connection") for _ in range(3)]
        assert conns == ["close"] * 3
        assert sim.stats()["connections"]["opened"] == 3


async def test_idle_reaping_closes_the_connection() -> None:
    """Without a FIN delay the client sees the close and simply opens a new connection: nothing is lost."""
    async with SimServer(SimConfig(idle_timeout_ms=30, **FAST)) as sim, aiohttp.ClientSession() as http:
        assert (await _post(http, sim.url))[0] == 200
        await asyncio.sleep(0.15)
        assert (await _post(http, sim.url))[0] == 200
        stats = sim.stats()["connections"]
    assert stats["reaped"] >= 1 and stats["lost"] == 0 and stats["opened"] == 2


async def test_fin_delay_loses_a_request_sent_on_a_reaped_connection() -> None:
    cfg = SimConfig(idle_timeout_ms=20, fin_delay_ms=3000, **FAST)
    async with SimServer(cfg) as sim, aiohttp.ClientSession() as http:
        assert (await _post(http, sim.url))[0] == 200
        await asyncio.sleep(0.1)
        with pytest.raises(aiohttp.ClientError):  # "Server disconnected" / connection reset, no reply
            await _post(http, sim.url)
        stats = sim.stats()
    assert stats["connections"]["lost"] == 1
    assert stats["requests"] == 1  # the lost request never reached a handler


async def test_silent_close_after_a_reply() -> None:
    """Closed right after a reply that did not say so: the next request on the connection is lost while the
    FIN is delayed; with no delay the client sees the close and opens a new connection."""
    cfg = SimConfig(silent_close_rate=1.0, fin_delay_ms=3000, **FAST)
    async with SimServer(cfg) as sim, aiohttp.ClientSession() as http:
        status, _, headers = await _post(http, sim.url)
        assert status == 200 and headers.get("Connection") is None
        with pytest.raises(aiohttp.ClientError):
            await _post(http, sim.url)
        stats = sim.stats()["connections"]
    assert stats["silent_closes"] == 1 and stats["lost"] == 1
    async with SimServer(SimConfig(silent_close_rate=1.0, **FAST)) as sim, aiohttp.ClientSession() as http:
        assert (await _post(http, sim.url))[0] == 200
        await asyncio.sleep(0.05)
        assert (await _post(http, sim.url))[0] == 200
        assert sim.stats()["connections"]["opened"] == 2


async def test_bounded_workers_queue_then_drop() -> None:
    cfg = SimConfig(max_workers=1, worker_queue=1, ttft_ms=200, itl_ms=0)
    async with SimServer(cfg) as sim:
        conn = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=conn) as http:
            results = await asyncio.gather(*(_post(http, sim.url) for _ in range(3)), return_exceptions=True)
        for _ in range(100):  # the server learns of the last closes a loop turn or two later
            if sim.stats()["connections"]["busy_workers"] == 0:
                break
            await asyncio.sleep(0.01)
        stats = sim.stats()["connections"]
    statuses = sorted(str(r[0]) if isinstance(r, tuple) else "error" for r in results)
    assert statuses == ["200", "200", "error"], results  # one served, one waited and was served, one dropped
    assert stats["queued"] == 1 and stats["dropped"] == 1 and stats["busy_workers"] == 0


async def test_uuid_request_ids() -> None:
    async with SimServer(SimConfig(uuid_request_ids=True, **FAST)) as sim, aiohttp.ClientSession() as http:
        status, body, _ = await _post(http, sim.url, headers={"X-Request-Id": "0"})
        assert (status, body) == (400, b"")
        status, _, _ = await _post(http, sim.url, headers={"X-Request-Id": str(uuid.uuid4())})
        assert status == 200
        status, _, _ = await _post(http, sim.url)
        assert status == 200


def test_worker_queue_needs_workers_and_cli_flags() -> None:
    with pytest.raises(ValidationError):
        SimConfig(worker_queue=4)
    from evalscope.cli.sim import sim

    out = CliRunner().invoke(sim, ["--help"]).output
    for flag in (
        "--keepalive-max-requests",
        "--idle-timeout-ms",
        "--fin-delay-ms",
        "--close-rate",
        "--silent-close-rate",
        "--max-workers",
        "--worker-queue",
        "--uuid-request-ids",
    ):
        assert flag in out
