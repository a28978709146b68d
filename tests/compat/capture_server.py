"""A tiny OpenAI-compatible server on loopback that records every request body (what reached the server).

Answers every chat / completions request with ``ANSWER: A`` (streamed or whole, as asked) and lists the
models it was given, so that evalscope's preflight passes. Runs in its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from aiohttp import web


class CaptureServer:
    """``with CaptureServer() as srv: ... srv.bodies`` - start, record, stop."""

    def __init__(self, models: tuple[str, ...] = ("qwen",), answer: str = "ANSWER: A") -> None:
        self.models = models
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def completions(self) -> list[dict[str, Any]]:
        """Bodies of generation requests (preflight probes included; they carry max_tokens too)."""
        return [b for b in self.bodies if "messages" in b or "prompt" in b]

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
        )

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        self.paths.append(request.path)
        chat = "messages" in body
        usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for piece in (self.answer[:4], self.answer[4:]):
                choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
                chunk = {"id": "x", "object": "chunk", "created": int(time.time()), "choices": [choice]}
                await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            fin: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
            fin.update({"delta": {}} if chat else {"text": ""})
            last = {"id": "x", "object": "chunk", "choices": [fin], "usage": usage}
            await resp.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
            await resp.write_eof()
            return resp
        choice = (
            {"index": 0, "message": {"role": "assistant", "content": self.answer}, "finish_reason": "stop"}
            if chat
            else {"index": 0, "text": self.answer, "finish_reason": "stop"}
        )
        return web.json_response({"id": "x", "object": "completion", "choices": [choice], "usage": usage})

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._generate)
        app.router.add_post("/v1/completions", self._generate)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._runner = runner
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def __enter__(self) -> CaptureServer:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "capture server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
