"""Fixtures for simulator tests: an in-process server factory, a client session and an SSE reader."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from evalscope.sim import SimConfig, SimServer

MakeSim = Callable[..., Awaitable[SimServer]]


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    """Start simulators on port 0 with the given SimConfig fields (fast latencies by default)."""
    servers: list[SimServer] = []

    async def factory(**kw: Any) -> SimServer:
        kw.setdefault("ttft_ms", 5.0)
        kw.setdefault("itl_ms", 1.0)
        sim = SimServer(SimConfig(**kw), host="127.0.0.1", port=0)
        await sim.start()
        servers.append(sim)
        return sim

    yield factory
    for sim in servers:
        await sim.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20)) as s:
        yield s


def split_events(raw: bytes) -> list[bytes]:
    """The ``data:`` payloads of an SSE body, in order."""
    out = []
    for block in raw.split(b"\n\n"):
        block = block.strip()
        if block.startswith(b"data: "):
            out.append(block[6:])
    return out


@pytest.fixture
def sse() -> Callable[[bytes], list[bytes]]:
    return split_events


@pytest.fixture
def chunks() -> Callable[[list[bytes]], list[dict[str, Any]]]:
    """Parse every JSON event (skipping [DONE])."""

    def parse(events: list[bytes]) -> list[dict[str, Any]]:
        return [orjson.loads(e) for e in events if e != b"[DONE]"]

    return parse


CHAT = {"model": "sim-model", "messages": [{"role": "user", "content": "hello there friend"}]}
