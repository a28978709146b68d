"""A canned-response OpenAI chat server for client CPU benchmarks: about the fastest server there can be.

Why: against the simulator (an aiohttp server doing real per-request work on one core), a fast client is idle
part of the time, and each idle spell ends with a wake-up (an ``epoll_wait`` that slept, a context switch)
whose kernel cost lands in the client's CPU per request. How much depends on how slow the server is, not on
the client: the floor reader sleeps 3 to 3.6 times per request against the simulator and 0.1 to 0.9 times
against this server. A server that answers at memory speed keeps the client busy, so the client's CPU per
request is its own work: what bounds the requests per second one client core can drive.

Every ``POST`` gets the simulator's stream shape for ``--tokens`` tokens: a first chunk with the role, plain
content chunks, the finish reason on the last one, a usage chunk and ``[DONE]``, chunked, in one write, with
a per-request id in every event (so a client cannot reuse one request's frame bytes for the next).
``GET /v1/models`` lists ``sim-model``. Nothing is parsed but the request's framing (headers, Content-Length).

    python benchmarks/canned_server.py [--port 0] [--tokens 8]      # prints "port N", serves until killed

:class:`CannedServer` runs it as a pinned subprocess (a context manager that stops it by its PID).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from types import TracebackType

import orjson

WORDS = ("while ", "on ", "for ", "such ", "next ", "as ", "during ", "by ")
_ID_WIDTH = 10
_PLACEHOLDER = b"#" * _ID_WIDTH


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _json_response(obj: object) -> bytes:
    body = orjson.dumps(obj)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


MODELS = _json_response({"object": "list", "data": [{"id": "sim-model", "object": "model"}]})


def template(tokens: int) -> bytes:
    """The whole HTTP response for one request, with ``_PLACEHOLDER`` where the request's id goes."""
    rid = "c-" + _PLACEHOLDER.decode()
    events: list[bytes] = []
    for i in range(tokens):
        word = WORDS[i % len(WORDS)]
        delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": "length" if i == tokens - 1 else None,
        }
        ev = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": 1796519474,
            "model": "sim-model",
            "choices": [choice],
        }
        events.append(b"data: " + orjson.dumps(ev) + b"\n\n")
    usage = {"prompt_tokens": 2, "completion_tokens": tokens, "total_tokens": tokens + 2}
    last = {"id": rid, "object": "chat.completion.chunk", "created": 1796519474, "model": "sim-model"}
    events.append(b"data: " + orjson.dumps({**last, "choices": [], "usage": usage}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    return head + b"".join(_chunk(e) for e in events) + b"0\r\n\r\n"


class _Conn(asyncio.Protocol):
    def __init__(self, tpl: bytes, counter: list[int]) -> None:
        self.tpl = tpl
        self.counter = counter
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else None])
            if len(buf) < end + 4 + length:
                break
            buf = buf[end + 4 + length :]
            assert self.transport is not None
            if head.startswith(b"post"):
                self.counter[0] += 1
                self.transport.write(self.tpl.replace(_PLACEHOLDER, b"%010d" % self.counter[0]))
            else:
                self.transport.write(MODELS)
        self.buf = buf


async def serve(port: int, tokens: int) -> None:
    tpl = template(tokens)
    counter = [0]
    server = await asyncio.get_running_loop().create_server(lambda: _Conn(tpl, counter), "127.0.0.1", port)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


class CannedServer:
    """The canned server as a subprocess (pinned to ``cpus`` when given); ``url`` once entered."""

    def __init__(self, tokens: int = 8, cpus: set[int] | None = None) -> None:
        self.tokens = tokens
        self.cpus = cpus
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> CannedServer:
        cpus = self.cpus
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--port", "0", "--tokens", str(self.tokens)],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("port "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"canned server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/v1/chat/completions"
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # by its PID
            proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=8)
    a = ap.parse_args()
    try:
        import uvloop

        uvloop.run(serve(a.port, a.tokens))
    except ImportError:
        asyncio.run(serve(a.port, a.tokens))


if __name__ == "__main__":
    main()
