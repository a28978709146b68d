"""Transport conformance beyond the simulator: HTTP framing, TLS, proxies, keep-alive, total timeout.

Every test runs over both transports (``any_transport``): the built-in one (``evalscope.engine.h1``) must
behave like aiohttp, the reference. The servers here are raw asyncio servers on loopback that write exact
bytes, so framing edge cases (a chunk split inside its size line, a body framed by the close, an interim
``100 Continue``) are produced on purpose rather than by chance.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from evalscope.engine import Client, Request, Timeouts
from evalscope.errors import ConfigError

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("any_transport")]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _sse(n: int) -> bytes:
    out = b""
    for i in range(n):
        ev = {"choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
        out += b"data: " + orjson.dumps(ev) + b"\n\n"
    last = {
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"completion_tokens": n},
    }
    return out + b"data: " + orjson.dumps(last) + b"\n\ndata: [DONE]\n\n"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return head


class RawServer:
    """A loopback server running ``handler`` per connection; counts connections and requests."""

    def __init__(self, handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl = ssl_ctx
        self.connections = 0
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            task = asyncio.current_task()
            assert task is not None
            self.tasks.add(task)
            try:
                await self.handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=self.ssl)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


def _keepalive(reply: Callable[[RawServer], list[bytes]], srv_box: list[RawServer]) -> Handler:
    """A handler that answers every request on the connection with ``reply``'s writes (one drain each)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            srv_box[0].heads.append(await _read_request(reader))
            for part in reply(srv_box[0]):
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0)

    return handle


async def _one(url: str, n: int = 3, **kw: object) -> list:  # type: ignore[type-arg]
    async with Client(url, "m", send_request_id=False, **kw) as c:  # type: ignore[arg-type]
        return [await c.send(Request(prompt="hi", max_tokens=4)) for _ in range(n)]


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, i = b"", 0
    for s in sizes:
        piece = body[i : i + s]
        if piece:
            out += b"%x\r\n%b\r\n" % (len(piece), piece)
        i += s
    if i < len(body):
        out += b"%x\r\n%b\r\n" % (len(body) - i, body[i:])
    return out + b"0\r\n\r\n"


HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_chunks_split_anywhere_and_connection_reused() -> None:
    """Chunk frames written byte-split (inside size lines, CRLFs, events): same record; one connection."""
    body = _sse(5)
    wire = HEAD_CHUNKED + _chunked(body, [7, 1, 30, 200])
    box: list[RawServer] = []

    def reply(_s: RawServer) -> list[bytes]:
        return [wire[i : i + 5] for i in range(0, len(wire), 5)]

    async with RawServer(_keepalive(reply, box)) as srv:
        box.append(srv)
        recs = await _one(f"http://127.0.0.1:{srv.port}")
    assert all(r.ok for r in recs), [r.error for r in recs]
    assert [r.completion_tokens for r in recs] == [5, 5, 5]
    assert srv.connections == 1  # kept alive: the chunked terminator was read before the next request


async def test_content_length_sse_and_interim_100_continue() -> None:
    body = _sse(4)
    wire = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        + b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    box: list[RawServer] = []
    async with RawServer(_keepalive(lambda _s: [wire[:60], wire[60:]], box)) as srv:
        box.append(srv)
        recs = await _one(f"http://127.0.0.1:{srv.port}", n=2)
    assert all(r.ok and r.completion_tokens == 4 for r in recs), [r.error for r in recs]
    assert srv.connections == 1


async def test_body_framed_by_close() -> None:
    """No Content-Length, not chunked: the body ends with the connection (HTTP/1.0 style)."""
    body = _sse(3)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + body[:50])
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(body[50:])
        await writer.drain()

    async with RawServer(handle) as srv:
        recs = await _one(f"http://127.0.0.1:{srv.port}", n=2)
    assert all(r.ok and r.completion_tokens == 3 for r in recs), [r.error for r in recs]
    assert srv.connections == 2  # never reused


async def test_whole_json_and_error_bodies() -> None:
    ok = orjson.dumps(
        {
            "choices": [{"index": 0, "message": {"content": "a b"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2},
        }
    )
    box: list[RawServer] = []

    def reply(s: RawServer) -> list[bytes]:
        if len(s.heads) % 2:
            return [
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                % (len(ok), ok)
            ]
        err = b'{"error": "overloaded"}'
        return [
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: %d\r\n\r\n%b"
            % (len(err), err)
        ]

    async with RawServer(_keepalive(reply, box)) as srv:
        box.append(srv)
        recs = await _one(f"http://127.0.0.1:{srv.port}", n=4, stream=False)
    assert [r.status for r in recs] == ["ok", "error", "ok", "error"]
    assert recs[0].completion_tokens == 2
    err = recs[1].error
    assert err is not None and err.kind == "http_status" and err.http_status == 503 and err.retry_after_s == 2
    assert "overloaded" in err.message
    assert srv.connections == 1  # an error body read to its end leaves the connection reusable


async def test_an_unasked_second_response_in_the_same_write_changes_nothing() -> None:
    """A careless server writes a second response right behind the first, in one segment: the first
    request's record (its status, error message, tokens) is the first response's alone."""
    err = b'{"error": "overloaded"}'
    evil = b'{"error": "EVIL"}'
    wire = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n%b" % (
        len(err),
        err,
    ) + b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%b" % (len(evil), evil)
    sse = _sse(3)
    wire_ok = HEAD_CHUNKED + _chunked(sse, [len(sse)]) + wire

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(wire)
        await writer.drain()
        await asyncio.sleep(0.3)

    async def handle_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(wire_ok)
        await writer.drain()
        await asyncio.sleep(0.3)

    async with RawServer(handle) as srv:
        (rec,) = await _one(f"http://127.0.0.1:{srv.port}", n=1)
    assert rec.status == "error" and rec.error is not None and rec.http_status == 503
    assert "overloaded" in rec.error.message and "EVIL" not in rec.error.message
    async with RawServer(handle_ok) as srv:
        (rec,) = await _one(f"http://127.0.0.1:{srv.port}", n=1)
    assert rec.ok and rec.http_status == 200 and rec.completion_tokens == 3, rec.error


async def test_garbage_reply_is_an_error_not_a_crash() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\nzz\r\n"
        )
        await writer.drain()
        await asyncio.sleep(0.5)

    async with RawServer(handle) as srv:
        (rec,) = await _one(f"http://127.0.0.1:{srv.port}", n=1)
    assert rec.status == "error" and rec.error is not None
    # aiohttp files a bad first chunk under "connect" (its response object never reached us); ours knows the
    # status line had arrived
    assert rec.error.kind in ("incomplete_stream", "malformed_stream", "connect"), rec.error


async def test_total_timeout() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(HEAD_CHUNKED)
        for _i in range(100):  # a token every 50 ms: never idle long enough for the read timeout
            writer.write(_chunked(_sse(1).split(b"\n\n")[0] + b"\n\n", [1000])[: -len(b"0\r\n\r\n")])
            await writer.drain()
            await asyncio.sleep(0.05)

    async with RawServer(handle) as srv:
        (rec,) = await _one(
            f"http://127.0.0.1:{srv.port}", n=1, timeouts=Timeouts(connect_s=2, read_s=1.0, total_s=0.4)
        )
    assert rec.status == "error" and rec.error is not None and rec.error.kind == "total_timeout", rec.error
    assert rec.n_events >= 3  # what arrived before the cut is kept


def _tls_pair(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evalscope-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_pem, key_pem = tmp / "cert.pem", tmp / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_pem, key_pem)
    client = ssl.create_default_context(cafile=str(cert_pem))
    return server, client


async def test_tls_with_a_trusted_self_signed_certificate(tmp_path: Path) -> None:
    server_ctx, client_ctx = _tls_pair(tmp_path)
    wire = HEAD_CHUNKED + _chunked(_sse(3), [40, 40])
    box: list[RawServer] = []
    async with RawServer(_keepalive(lambda _s: [wire], box), ssl_ctx=server_ctx) as srv:
        box.append(srv)
        recs = await _one(f"https://127.0.0.1:{srv.port}", n=2, ssl_context=client_ctx)
        assert all(r.ok and r.completion_tokens == 3 for r in recs), [r.error for r in recs]
        assert srv.connections == 1
        # without the certificate in the trust store the handshake fails: a connect error, not a crash
        (bad,) = await _one(f"https://127.0.0.1:{srv.port}", n=1)
    assert bad.status == "error" and bad.error is not None and bad.error.kind == "connect", bad.error


async def test_http_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY carries requests for a non-loopback host in absolute form; NO_PROXY exempts the host."""
    wire = HEAD_CHUNKED + _chunked(_sse(2), [1000])
    box: list[RawServer] = []
    async with RawServer(_keepalive(lambda _s: [wire], box)) as proxy:
        box.append(proxy)
        for var in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        recs = await _one("http://llm.example.invalid:8000/v1", n=2)
        assert all(r.ok and r.completion_tokens == 2 for r in recs), [r.error for r in recs]
        assert proxy.heads[0].startswith(b"POST http://llm.example.invalid:8000/v1/chat/completions HTTP/1.1")
        # loopback is never proxied
        n_heads = len(proxy.heads)
        (direct,) = await _one(f"http://127.0.0.1:{proxy.port}", n=1)
        assert direct.ok and proxy.heads[n_heads].startswith(b"POST /v1/chat/completions HTTP/1.1")
        monkeypatch.setenv("NO_PROXY", "example.invalid")
        (bypassed,) = await _one("http://llm.example.invalid:8000/v1", n=1, timeouts=Timeouts(connect_s=5))
    assert bypassed.status == "error" and bypassed.error is not None
    assert bypassed.error.kind in ("dns", "connect")


def test_https_behind_a_proxy_is_refused_by_the_builtin_transport(
    monkeypatch: pytest.MonkeyPatch, any_transport: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@127.0.0.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    if any_transport == "builtin":
        with pytest.raises(ConfigError) as info:
            Client("https://llm.example.invalid/v1", "m")
        assert "--transport aiohttp" in str(info.value) + (info.value.hint or "")
        assert "pw" not in str(info.value)
    else:
        assert Client("https://llm.example.invalid/v1", "m").transport == "aiohttp"


async def test_closed_loop_never_waits_for_a_reused_connections_tail() -> None:
    """Many streams finishing in one loop iteration: a connection returned to the pool may carry the next
    request before the previous sender resumes. That sender must not then wait for "its" body's end (the
    built-in transport once did, for the 1 s tail limit, on a few percent of requests at 16 streams)."""
    from time import perf_counter

    from evalscope.sim import SimConfig, SimProcess

    # a server in another process: many replies land in one poll of the client's loop
    with SimProcess(SimConfig(ttft_ms=0, itl_ms=0, output_tokens=8, truth=False)) as sim:
        async with Client(sim.url, "sim-model", send_request_id=False) as c:
            durations: list[float] = []

            async def slot() -> None:
                for _ in range(12):
                    t0 = perf_counter()
                    rec = await c.send(Request(prompt="hi", max_tokens=8))
                    durations.append(perf_counter() - t0)
                    assert rec.ok, rec.error

            await asyncio.gather(*(slot() for _ in range(16)))
    assert len(durations) == 192
    assert max(durations) < 0.9, sorted(durations)[-5:]


async def test_prewarm_probe_timeout_is_not_the_requests_read_timeout() -> None:
    """A connection opened by ``prewarm`` (10 s probe timeout here 0.3 s) must not carry the probe's timeout
    into the requests sent on it: a reply that starts after 0.6 s is fine with a 5 s read timeout (the
    built-in transport once failed such requests with "no data for 10 s" against llama-cpp-python)."""
    from evalscope.sim import SimConfig, SimServer

    async with SimServer(SimConfig(ttft_ms=600, itl_ms=1, output_tokens=2), port=0) as sim:
        async with Client(sim.url, "sim-model", timeouts=Timeouts(connect_s=2, read_s=5)) as c:
            assert await c.prewarm(1, timeout_s=0.3) == 1
            rec = await c.send(Request(prompt="hi", max_tokens=2))
    assert rec.ok, rec.error


async def test_get_returns_status_headers_body_and_no_answer_is_get_failed() -> None:
    """``Client.get`` (preflight's and identify's GET) on either transport: the body whatever the status, the
    server's request carries the client's credentials but no Content-Type; refused and silent are told apart."""
    from evalscope.engine.client import GetFailed

    models = b'{"data": [{"id": "m"}]}'
    box: list[RawServer] = []

    def reply(s: RawServer) -> list[bytes]:
        if len(s.heads) == 1:
            return [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", b"Transfer-Encoding: chunked\r\n\r\n",
                    _chunked(models, [7, 3])]  # fmt: skip
        return [b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope"]

    async with RawServer(_keepalive(reply, box)) as srv:
        box.append(srv)
        async with Client(f"http://127.0.0.1:{srv.port}", "m", api_key="sk-get") as c:
            status, headers, body = await c.get(f"http://127.0.0.1:{srv.port}/v1/models")
            assert (status, body) == (200, models) and "json" in headers["content-type"].lower()
            status, _, body = await c.get(f"http://127.0.0.1:{srv.port}/v1/models")
            assert (status, body) == (401, b"nope")
        head = srv.heads[0].decode().lower()
        assert head.startswith("get /v1/models http/1.1") and "authorization: bearer sk-get" in head
        assert "content-type" not in head

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async with RawServer(silent) as srv, Client(f"http://127.0.0.1:{srv.port}", "m") as c:
        port = srv.port
        with pytest.raises(GetFailed) as info:
            await c.get(f"http://127.0.0.1:{port}/v1/models", 1.0, 0.3, 0.5)
        assert info.value.kind == "timeout"
    # closed now: nothing listens on that port
    async with Client(f"http://127.0.0.1:{port}", "m") as c:
        with pytest.raises(GetFailed) as info:
            await c.get(f"http://127.0.0.1:{port}/v1/models")
        assert info.value.kind == "connect" and "refused" in info.value.detail.lower()
