"""Hostile replies of the simulator (``usage_fault``, ``loading_ms``): what buggy, hostile or still-starting
servers were seen to send."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

#: llama-server's reply (same bytes) to every request while it loads the model: /health and /v1/models
#: included, on a port that is already open (seen for ~0.35 s with the tiny model of benchmarks/realservers).
LOADING_BODY = b'{"error":{"message":"Loading model","type":"unavailable_error","code":503}}'


def loading(
    ready_at: float,
) -> Callable[
    [web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    Coroutine[Any, Any, web.StreamResponse],
]:
    """A middleware answering 503 ``Loading model`` until ``time.monotonic()`` reaches ``ready_at``
    (``--loading-ms``): a readiness check must wait for a 200, not for an open port."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if time.monotonic() < ready_at:
            return web.Response(status=503, body=LOADING_BODY, content_type="application/json")
        return await handler(request)

    return middleware


def bad_usage(fault: str, prompt: int, completion: int) -> Any:
    """The usage object sent by ``--usage-fault`` (what hostile or buggy servers were seen to send)."""
    if fault == "string":
        return {"prompt_tokens": str(prompt), "completion_tokens": str(completion), "total_tokens": "n/a"}
    if fault == "text":
        return {"prompt_tokens": "some", "completion_tokens": "many", "total_tokens": "lots"}
    if fault == "negative":
        return {"prompt_tokens": -prompt, "completion_tokens": -completion - 1, "total_tokens": -1}
    if fault == "huge":
        return {"prompt_tokens": 10**12, "completion_tokens": 10**12, "total_tokens": 2 * 10**12}
    if fault == "float":
        return {"prompt_tokens": prompt + 0.5, "completion_tokens": completion + 0.5, "total_tokens": 1.5}
    return [["junk"], {"completion_tokens": {"nested": completion}}]
