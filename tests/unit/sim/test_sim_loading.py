"""``--loading-ms``: the simulator answers like llama-server while it loads the weights (503 "Loading model" on
every path, the port already open), then serves normally."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from evalscope.sim.quirks import LOADING_BODY

pytestmark = pytest.mark.timeout(30)


async def test_503_loading_model_then_ready(make_sim: Any, http: aiohttp.ClientSession) -> None:
    t0 = time.monotonic()
    sim = await make_sim(loading_ms=800)
    for path in ("/v1/models", "/health"):
        async with http.get(f"{sim.url}{path}") as r:
            assert r.status == 503
            assert await r.read() == LOADING_BODY
    body = {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    async with http.post(f"{sim.url}/v1/chat/completions", json=body) as r:
        assert r.status == 503
    await asyncio.sleep(max(0.0, 0.85 - (time.monotonic() - t0)))
    async with http.get(f"{sim.url}/v1/models") as r:
        assert r.status == 200
        assert (await r.json())["data"][0]["id"] == "sim-model"


async def test_no_loading_by_default(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    async with http.get(f"{sim.url}/v1/models") as r:
        assert r.status == 200
