"""The simulator's kernel receive stamp is independent of its own event loop (the send-side reference)."""

from __future__ import annotations

import asyncio
import socket
import time

import orjson

from evalscope.sim import SimConfig, SimServer

_REQ = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"X-Request-Id: %b\r\nContent-Length: %d\r\n\r\n%b"
)


def _request(rid: bytes) -> bytes:
    body = orjson.dumps(
        {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    )
    return _REQ % (rid, len(body), body)


async def test_kernel_stamp_is_when_bytes_arrived_not_when_the_loop_read_them() -> None:
    async with SimServer(SimConfig(ttft_ms=1, itl_ms=0)) as sim:
        sock = socket.create_connection(("127.0.0.1", sim.port))
        try:
            sock.setblocking(True)
            before = time.perf_counter_ns()
            sock.sendall(_request(b"k1"))  # loopback: the kernel stamps the data during this call
            after = time.perf_counter_ns()
            time.sleep(0.05)  # the simulator's loop (this loop) cannot read for 50 ms
            sock.setblocking(False)
            for _ in range(200):
                await asyncio.sleep(0.005)
                if "k1" in sim.truth and sim.truth["k1"].outcome != "pending":
                    break
        finally:
            sock.close()
        t = sim.truth["k1"].to_dict()
    k = t["kernel_arrival_ns"]
    assert k is not None, "the asyncio loop must give kernel stamps"
    # Within the sendall call (conversion error is a few µs: allow 0.2 ms), while the loop read it >= 50 ms later.
    assert before - 200_000 <= k <= after + 200_000, ((k - before) / 1e6, (after - before) / 1e6)
    assert t["arrival_ns"] - k >= 45_000_000, (t["arrival_ns"] - k) / 1e6


async def test_every_request_on_a_keepalive_connection_gets_its_own_stamp() -> None:
    async with SimServer(SimConfig(ttft_ms=1, itl_ms=0)) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        sent: dict[str, int] = {}
        for i in range(3):
            rid = f"ka{i}"
            sent[rid] = time.perf_counter_ns()
            writer.write(_request(rid.encode()))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            n = int(
                next(x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")).split(b":")[1]
            )
            await reader.readexactly(n)
            await asyncio.sleep(0.02)
        writer.close()
        truth = {r: sim.truth[r].to_dict() for r in sent}
    ks = [truth[r]["kernel_arrival_ns"] for r in sent]
    assert all(k is not None for k in ks)
    for r, s in sent.items():
        assert 0 <= truth[r]["kernel_arrival_ns"] - s < 20_000_000
    assert ks[1] - ks[0] >= 20_000_000 and ks[2] - ks[1] >= 20_000_000  # not the connection's first read


async def test_truth_arrival_view_is_small_and_keyed() -> None:
    import aiohttp

    async with SimServer(SimConfig(ttft_ms=0, itl_ms=0)) as sim, aiohttp.ClientSession() as s:
        for i in range(5):
            async with s.post(
                sim.url + "/v1/completions",
                json={"model": "sim-model", "prompt": "x", "max_tokens": 1},
                headers={"X-Request-Id": f"v{i}"},
            ) as r:
                await r.read()
        async with s.get(sim.url + "/sim/truth?view=arrival&last=2") as r:
            rows = await r.json()
    assert [row["request_id"] for row in rows] == ["v3", "v4"]
    assert set(rows[0]) == {"request_id", "arrival_ns", "kernel_arrival_ns"}
    assert rows[0]["kernel_arrival_ns"] <= rows[0]["arrival_ns"]
