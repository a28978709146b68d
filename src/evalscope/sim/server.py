"""The simulator: an aiohttp server that speaks the OpenAI HTTP API with a controllable latency model.

Streams are not coroutines that sleep between chunks: a handler validates the request, sends the response
headers, and hands a :class:`_Stream` to the shared :class:`~evalscope.sim.ticker.Ticker`, which writes every
chunk of every stream from one timer callback straight to the transport (pre-built bytes, manual chunked
framing, no await per chunk). That is what keeps thousands of concurrent streams on schedule.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import random
import socket
import struct
import time
from array import array
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from evalscope.engine.records import SIM_ID_HEADER, SIM_MARK_HEADER
from evalscope.sim import conns as _conns
from evalscope.sim.capacity import Capacity
from evalscope.sim.config import SimConfig
from evalscope.sim.policies import ReplyMaker, prompt_seed, reasoning_tokens
from evalscope.sim.serverside import PrefixCache, metrics_text, timings_json
from evalscope.sim.ticker import Ticker
from evalscope.sim.tools import ToolCall, image_error, plan_tool_call
from evalscope.sim.truth import LAG_BUCKETS, Stats, TruthRecord, TruthStore
from evalscope.tokens import (
    count_message_tokens,
    count_prompt_tokens,
    message_text,
    messages_text,
    prompt_text,
    token_ids,
)

_log = logging.getLogger("evalscope.sim")
_MS = 1_000_000
_STALL_POLL_NS = 50 * _MS
_MID_STREAM = frozenset({"drop", "malformed", "stall", "no_done", "error_event"})
_DONE = b"data: [DONE]\n\n"
_MALFORMED = b"data: {not json\n\n"
_REASONING_KEY = b'"reasoning_content":'
_CONTENT_KEY = b'"content":'


def _frame(payload: bytes) -> bytes:
    """One HTTP/1.1 chunked-transfer frame (we bypass aiohttp's writer, so we frame ourselves)."""
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def error_body(message: str, type_: str, code: int) -> bytes:
    """An OpenAI-style error object, as JSON bytes."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


def _error(status: int, message: str, type_: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(message, type_, status),
        content_type="application/json",
        headers=headers,
    )


class _Waiter:
    """A ticker item that completes a future at its deadline (non-stream responses)."""

    __slots__ = ("fut",)

    def __init__(self, fut: asyncio.Future[None]) -> None:
        self.fut = fut

    def fire(self, due_ns: int) -> int | None:
        if not self.fut.done():
            self.fut.set_result(None)
        return None

    def fail(self, exc: BaseException) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


class _Stream:
    """One streaming response, advanced chunk by chunk by the ticker.

    ``chunks`` holds ``(is_reasoning, text, n_tokens)`` (``is_reasoning`` None: a tool-call piece whose text is
    the delta's pre-rendered JSON members, see ``sim/tools.py``); the fault (if any) strikes right after chunk
    ``fault_at`` (1-based count of chunks sent).
    """

    __slots__ = (
        "base",
        "chat",
        "choice_head",
        "chunks",
        "continuous",
        "fault",
        "fault_at",
        "finish",
        "fut",
        "i",
        "include_usage",
        "itl_ns",
        "jitter",
        "rec",
        "rng",
        "sent_tokens",
        "server",
        "stall_until",
        "transport",
    )

    def __init__(
        self,
        server: SimServer,
        rec: TruthRecord,
        transport: asyncio.Transport,
        base: bytes,
        chat: bool,
        chunks: list[tuple[bool | None, str, int]],
        finish: str,
        include_usage: bool,
        continuous: bool,
        fault: str | None,
        itl_ns: int,
        rng: random.Random | None,
        jitter: float,
        fut: asyncio.Future[bool],
    ) -> None:
        self.server = server
        self.rec = rec
        self.transport = transport
        self.base = base
        self.chat = chat
        self.choice_head = b'"choices":[{"index":0,'
        self.chunks = chunks
        self.finish = finish
        self.include_usage = include_usage
        self.continuous = continuous
        self.fault = fault if fault in _MID_STREAM else None
        self.fault_at = max(1, len(chunks) // 2) if self.fault else -1
        self.itl_ns = itl_ns
        self.rng = rng
        self.jitter = jitter
        self.fut = fut
        self.i = 0
        self.sent_tokens = 0
        self.stall_until = 0

    def _usage(self) -> bytes:
        p = self.rec.prompt_tokens
        c = self.sent_tokens
        return b'"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d' % (p, c, p + c)

    def _final_usage(self) -> bytes:
        fault = self.server.cfg.usage_fault
        if fault is not None:
            from evalscope.sim.quirks import bad_usage

            return b'"usage":' + orjson.dumps(bad_usage(fault, self.rec.prompt_tokens, self.sent_tokens))
        usage = self._usage()
        if self.rec.reasoning_tokens:
            usage += b',"completion_tokens_details":{"reasoning_tokens":%d}' % self.rec.reasoning_tokens
        if self.rec.cached_tokens is not None:
            usage += b',"prompt_tokens_details":{"cached_tokens":%d}' % self.rec.cached_tokens
        return usage + b"}"

    def _timings(self) -> bytes:
        """``,"timings":{...}`` for the last event when the simulator imitates llama.cpp, else nothing."""
        cfg = self.server.cfg
        if not cfg.timings:
            return b""
        rec = self.rec
        now = perf_counter_ns()
        first = rec.first_token_ns if rec.first_token_ns is not None else now
        cached = rec.cached_tokens or 0
        return b',"timings":' + timings_json(
            rec.prompt_tokens - cached,
            first - rec.arrival_ns,
            self.sent_tokens,
            now - first,
            len(self.chunks),
            cfg.draft_acceptance,
        )

    def _tail(self) -> bytes:
        """What follows the last chunk: the usage chunk (with timings) when asked, then ``[DONE]``."""
        tail = b""
        if self.include_usage:
            tail = _frame(b'%b"choices":[],%b%b}\n\n' % (self.base, self._final_usage(), self._timings()))
        if self.server.cfg.send_done:
            tail += _frame(_DONE)
        return tail

    def fire(self, due_ns: int) -> int | None:
        """Send chunk ``i`` (and the tail or the fault after it); return the next deadline."""
        tr = self.transport
        if self.fut.done():  # the server is stopping
            return None
        if tr.is_closing():
            self._end("client_closed", eof=False)
            return None
        if self.stall_until:
            if perf_counter_ns() >= self.stall_until:
                tr.abort()
                self._end("stall", eof=False)
                return None
            return due_ns + _STALL_POLL_NS
        i = self.i
        is_reasoning, text, ntok = self.chunks[i]
        self.sent_tokens += ntok
        last = i + 1 == len(self.chunks)
        ending_fault = self.fault is not None and self.fault != "malformed" and i + 1 == self.fault_at
        fr = b'"%b"' % self.finish.encode() if last and not ending_fault else b"null"
        if self.chat:
            delta = b'"delta":{"role":"assistant",' if i == 0 else b'"delta":{'
            if is_reasoning is None:
                body = b'%b%b},"logprobs":null,"finish_reason":%b}]' % (delta, text.encode(), fr)
            else:
                key = _REASONING_KEY if is_reasoning else _CONTENT_KEY
                body = b'%b%b%b},"logprobs":null,"finish_reason":%b}]' % (delta, key, orjson.dumps(text), fr)
        else:
            body = b'"text":%b,"logprobs":null,"finish_reason":%b}]' % (orjson.dumps(text), fr)
        extra = b""
        if self.continuous:
            extra = b"," + self._usage() + b"}"
        if last and not self.include_usage:
            extra += self._timings()  # no usage chunk follows: llama.cpp puts timings on its last event
        server = self.server
        t = perf_counter_ns()
        if server.emit_timestamps:
            extra += b',"sim_ns":%d' % t
        tr.write(_frame(b"%b%b%b%b}\n\n" % (self.base, self.choice_head, body, extra)))
        rec = self.rec
        if i == 0:
            rec.first_token_ns = t
        if server.keep_truth:
            rec.chunk_ns.append(t)
            rec.due_ns.append(due_ns)
            rec.chunk_tokens.append(ntok)
        rec.completion_tokens = self.sent_tokens
        server.note_chunk(t - due_ns)
        self.i = i + 1
        if self.fault is not None and self.i == self.fault_at:
            return self._strike(due_ns)
        if last:
            tr.write(self._tail())
            self._end("ok", eof=True)
            return None
        return self._next_due(due_ns)

    def _next_due(self, due_ns: int) -> int:
        """Deadline of chunk ``i``: k tokens after the previous deadline (absolute, so lateness never drifts)."""
        cap = self.server.capacity  # with a capacity model the decode step depends on the running batch
        nxt = self.chunks[self.i][2] * (self.itl_ns if cap is None else cap.itl_ns)
        if self.rng is not None and nxt:
            nxt = round(nxt * (1.0 + self.jitter * (2.0 * self.rng.random() - 1.0)))
        return due_ns + nxt

    def fail(self, exc: BaseException) -> None:
        """A bug while sending: cut this connection (the client sees a drop) and release the handler."""
        _log.error("simulator stream %s failed: %r", self.rec.request_id, exc)
        self.transport.abort()
        self._end("internal_error", eof=False)

    def _strike(self, due_ns: int) -> int | None:
        """Apply the mid-stream fault right after the ``fault_at``-th chunk."""
        tr = self.transport
        fault = self.fault
        if fault == "drop":
            tr.abort()
            self._end("drop", eof=False)
            return None
        if fault == "malformed":
            tr.write(_frame(_MALFORMED))
            self.fault = None
            self.rec.outcome = "malformed"
            if self.i == len(self.chunks):
                # the malformed event came after the last chunk: finish normally
                self.fire_tail()
                return None
            return self._next_due(due_ns)
        if fault == "stall":
            self.stall_until = perf_counter_ns() + self.server.stall_max_ns
            self.rec.outcome = "stall"
            return due_ns + _STALL_POLL_NS
        if fault == "no_done":
            self._end("no_done", eof=True)
            return None
        err = b'data: {"error":{"message":"simulated error mid-stream","type":"InternalServerError",'
        err += b'"param":null,"code":500}}\n\n'
        tr.write(_frame(err) + _frame(_DONE))
        self._end("error_event", eof=True)
        return None

    def fire_tail(self) -> None:
        """Write the usage chunk and [DONE] (used when a malformed event followed the last chunk)."""
        self.transport.write(self._tail())
        self._end("ok", eof=True)

    def _end(self, outcome: str, *, eof: bool) -> None:
        rec = self.rec
        if rec.end_ns is None:
            rec.end_ns = perf_counter_ns()
        if rec.outcome == "pending":  # a stall keeps its name when the client finally leaves
            rec.outcome = outcome
        if not self.fut.done():
            self.fut.set_result(eof)


_REQUEST_LINE_STARTS = (b"POST", b"GET ", b"PUT ", b"HEAD", b"DELE", b"PATC", b"OPTI")


_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; absent from some Python builds
_TS_ANC = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0


class _KernelStampSocket(socket.socket):
    """An accepted TCP socket whose reads also fetch the kernel's receive time of the data (SO_TIMESTAMPNS).

    asyncio's selector transport reads with ``sock.recv``; this override reads with ``recvmsg`` instead, so the
    simulator learns when the request's bytes reached this machine's TCP stack, independently of when its own
    event loop got round to reading them. That stamp is what bounds a client's send-side delay: "client sent"
    to "kernel received" is the client's own time (plus a loopback hop), whatever the simulator was doing.
    The kernel stamps CLOCK_REALTIME; it is moved onto ``perf_counter_ns`` (CLOCK_MONOTONIC) with an offset
    read right after the data, bracketed by two monotonic reads (error: half the bracket, kept per read).
    uvloop reads the file descriptor itself, so there the stamp stays unknown (None).
    """

    kernel_ns: int | None = None
    kernel_err_ns: int = 0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, anc, _flags, _addr = self.recvmsg(bufsize, _TS_ANC, flags)
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(raw) >= 16:
                m0 = perf_counter_ns()
                rt = time.clock_gettime_ns(time.CLOCK_REALTIME)
                m1 = perf_counter_ns()
                sec, nsec = struct.unpack_from("qq", raw)
                self.kernel_ns = sec * 1_000_000_000 + nsec - rt + (m0 + m1) // 2
                self.kernel_err_ns = (m1 - m0 + 1) // 2
        return data


def _kernel_stamping(conn: socket.socket) -> socket.socket:
    """``conn`` as a :class:`_KernelStampSocket` with receive timestamps on (unchanged if that fails)."""
    if not _TS_ANC or conn.family not in (socket.AF_INET, socket.AF_INET6):
        return conn
    try:
        conn.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return conn
    return _KernelStampSocket(conn.family, conn.type, conn.proto, fileno=conn.detach())


class _StampingHandler(RequestHandler):
    """aiohttp's connection protocol, plus the time the first bytes of each request arrived.

    A burst of requests is parsed one after another; stamping "arrival" when the handler starts would leave the
    simulator's own parsing of the burst out of its truth (the client would see TTFT longer than the
    simulator's by that queueing). Stamped at ``data_received`` for a read that starts a request line, the
    latency model's schedule and the truth both start when the request reached the server.
    """

    sim_arrival_ns: int | None = None
    sim_kernel_ns: int | None = None  # the kernel's receive time of that read (asyncio loop only)
    _ksock: _KernelStampSocket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        sock = getattr(sock, "_sock", sock)  # asyncio hands out a TransportSocket wrapper
        if isinstance(sock, _KernelStampSocket):
            self._ksock = sock
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if data[:4] in _REQUEST_LINE_STARTS:
            self.sim_arrival_ns = perf_counter_ns()
            ks = self._ksock
            if ks is not None:
                self.sim_kernel_ns, ks.kernel_ns = ks.kernel_ns, None
        super().data_received(data)


class _ConnHandler(_conns.ConnMixin, _StampingHandler):
    """The connection protocol when a connection behaviour is on (keep-alive limits, reaping, workers)."""


class SimServer:
    """The simulator server, run in the current event loop (``async with SimServer(cfg) as sim``).

    Args:
        cfg: the simulator settings (defaults when None).
        host: interface to bind; loopback by default.
        port: TCP port; 0 picks a free one (read it back from :attr:`port` / :attr:`url`).
    """

    def __init__(self, cfg: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cfg = cfg if cfg is not None else SimConfig()
        self.host = host
        self.port = port
        self.truth: TruthStore = TruthStore(self.cfg.truth_max if self.cfg.truth else 0)
        self.keep_truth = self.cfg.truth and self.cfg.truth_max > 0
        self.emit_timestamps = self.cfg.emit_timestamps
        self.stall_max_ns = int(self.cfg.stall_max_s * 1e9)
        self._stats = Stats()
        self._rng = random.Random(self.cfg.seed)
        self._seq = 0
        self._maker = ReplyMaker(self.cfg)
        self._prefix = PrefixCache(self.cfg.prefix_block) if self.cfg.prefix_cache else None
        self._models = list(self.cfg.models)
        self._auth = f"Bearer {self.cfg.api_key}" if self.cfg.api_key else None
        self._active: dict[int, _Stream] = {}
        self._pending: set[asyncio.Future[Any]] = set()
        self._ticker: Ticker | None = None
        self._runner: web.AppRunner | None = None
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting: set[asyncio.Task[Any]] = set()
        self._conns: _conns.ConnPolicy | None = None
        self.capacity: Capacity | None = Capacity(self.cfg) if Capacity.wanted(self.cfg) else None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL without ``/v1``, e.g. ``http://127.0.0.1:8000``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def build_app(self) -> web.Application:
        """The aiohttp application with every route (no middleware: it would cost on every request)."""
        middlewares: list[Any] = [_conns.uuid_request_ids] if self.cfg.uuid_request_ids else []
        if self.cfg.loading_ms > 0:
            from evalscope.sim.quirks import loading

            middlewares.append(loading(time.monotonic() + self.cfg.loading_ms / 1000))
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=middlewares)
        if self._conns is not None:
            app.on_response_prepare.append(self._on_prepare)
        r = app.router
        r.add_post("/v1/chat/completions", self._chat)
        r.add_post("/v1/completions", self._completions)
        r.add_post("/v1/embeddings", self._embeddings)
        r.add_get("/v1/models", self._list_models)
        r.add_get("/health", self._health)
        r.add_get("/metrics", self._metrics)
        r.add_post("/tokenize", self._tokenize)
        r.add_get("/sim/truth", self._get_truth)
        r.add_get("/sim/stats", self._get_stats)
        r.add_route("*", "/sim/redirected/{tail:.*}", self._redirected)
        r.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def start(self) -> None:
        """Bind and start serving; fills in :attr:`port` when it was 0.

        We accept connections ourselves (a reader on the listening socket that drains the whole accept queue,
        then ``connect_accepted_socket`` into aiohttp's protocol): uvloop's own accept path was seen draining
        a burst of new connections at ~40/s while the server was busy streaming, which a client would
        measure as the simulator's connect latency.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._ticker = Ticker(loop, self.cfg.spin_us)
        if _conns.wanted(self.cfg):
            self._conns = _conns.ConnPolicy(self.cfg, loop)
        self._runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(4096)
            sock.setblocking(False)
            if _TS_ANC and isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
                # On the listener, so that accepted sockets inherit it: a request that arrives before the
                # accept is stamped too (the kernel only stamps while some socket asked for stamps).
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            sock.close()
            raise
        self._listener = sock
        self.port = int(sock.getsockname()[1])
        loop.add_reader(sock.fileno(), self._accept_ready)

    def _accept_ready(self) -> None:
        """Accept everything queued (bounded per wake-up) and hand each socket to aiohttp."""
        sock, runner, loop = self._listener, self._runner, self._loop
        if sock is None or runner is None or runner.server is None or loop is None:
            return
        server = runner.server
        kwargs = getattr(server, "_kwargs", {})

        policy = self._conns

        def factory() -> RequestHandler:
            if policy is not None:
                h = _ConnHandler(server, loop=loop, **kwargs)
                h.sim_conns = policy
                return h
            return _StampingHandler(server, loop=loop, **kwargs)

        selector_loop = isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)

        for _ in range(4096):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: leave the rest queued, retry on the next wake-up
                _log.warning("simulator accept failed: %r", exc)
                return
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if selector_loop:
                conn = _kernel_stamping(conn)
            task = loop.create_task(loop.connect_accepted_socket(factory, conn))
            self._accepting.add(task)
            task.add_done_callback(self._accepted)

    def _accepted(self, task: asyncio.Task[Any]) -> None:
        self._accepting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("simulator could not set up a connection: %r", task.exception())

    async def stop(self) -> None:
        """Abort open streams, release waiting handlers and close the listener."""
        for stream in list(self._active.values()):
            stream.transport.abort()
            stream._end("client_closed", eof=False)
        for fut in list(self._pending):
            if not fut.done():
                fut.cancel()
        if self._ticker is not None:
            self._ticker.close()
        if self._listener is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        for task in list(self._accepting):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ truth & stats

    def stats(self) -> dict[str, Any]:
        """Counters: requests, statuses, faults by kind, tokens served, chunk send lag."""
        snap = self._stats.snapshot(len(self._active), len(self.truth))
        if self._conns is not None:
            snap["connections"] = self._conns.snapshot()
        if self.capacity is not None:
            snap["capacity"] = self.capacity.snapshot()
        return snap

    async def _on_prepare(self, request: web.Request, resp: web.StreamResponse) -> None:
        if self._conns is not None:
            self._conns.on_prepare(request, resp)

    def reset_stats(self) -> None:
        """Zero the counters (truth is kept)."""
        self._stats.reset()

    def note_chunk(self, lag_ns: int) -> None:
        """Account one chunk handed to the transport ``lag_ns`` after its deadline."""
        st = self._stats
        st.chunks += 1
        st.lag_sum_ns += lag_ns
        if lag_ns > st.lag_max_ns:
            st.lag_max_ns = lag_ns
        b = lag_ns // 1000
        if b < 0:  # cannot happen from the ticker; direct callers (tests, benchmarks) may be early
            b = 0
        elif b > LAG_BUCKETS:
            b = LAG_BUCKETS
        st.lag_hist[b] += 1

    def _finalise(self, rec: TruthRecord) -> None:
        """Count a finished request in the stats, once."""
        if rec.finalised:
            return
        rec.finalised = True
        if rec.outcome == "pending":
            rec.outcome = "client_closed"
        st = self._stats
        st.by_status[rec.status] = st.by_status.get(rec.status, 0) + 1
        st.completion_tokens += rec.completion_tokens
        if rec.fault is not None:
            st.faults[rec.fault] = st.faults.get(rec.fault, 0) + 1
        if rec.outcome == "client_closed":
            st.client_closed += 1
        if rec.end_ns is None:
            rec.end_ns = perf_counter_ns()
        if rec.queue_ns is not None and self.capacity is not None:  # admitted: free its batch slot
            ideal_end = rec.due_ns[-1] if rec.due_ns else rec.end_ns  # the last chunk's due time
            self.capacity.release(rec.prompt_tokens + rec.planned_tokens, ideal_end)

    # ------------------------------------------------------------------ helpers

    def _new_record(self, request: web.Request, endpoint: str, arrival: int) -> TruthRecord:
        self._seq += 1
        h = request.headers
        rid = h.get(SIM_ID_HEADER) or h.get("X-Request-Id") or f"sim-{self._seq}"
        rec = TruthRecord(
            request_id=rid, seq=self._seq, endpoint=endpoint, model="", stream=False, arrival_ns=arrival
        )
        st = self._stats
        st.requests += 1
        st.by_endpoint[endpoint] = st.by_endpoint.get(endpoint, 0) + 1
        if self.keep_truth:
            self.truth.add(rec)
        return rec

    def _reject(
        self, rec: TruthRecord, status: int, message: str, type_: str, **headers: str
    ) -> web.Response:
        rec.status = status
        rec.outcome = "rejected"
        self._finalise(rec)
        return _error(status, message, type_, {"x-request-id": rec.request_id, **headers})

    async def _serve(
        self,
        request: web.Request,
        endpoint: str,
        inner: Callable[[web.Request, TruthRecord], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Record the request, run the endpoint, and always account for it, however it ends."""
        now = perf_counter_ns()
        proto = request.protocol
        stamp = getattr(proto, "sim_arrival_ns", None)
        kstamp = getattr(proto, "sim_kernel_ns", None)
        if stamp is not None:
            proto.sim_arrival_ns = None  # type: ignore[union-attr,attr-defined]
            proto.sim_kernel_ns = None  # type: ignore[union-attr,attr-defined]
        rec = self._new_record(request, endpoint, stamp if stamp is not None and stamp <= now else now)
        if kstamp is not None and stamp is not None:
            rec.kernel_arrival_ns = kstamp
        try:
            return await inner(request, rec)
        except ConnectionError:
            # the client left before we could answer: its outcome, not a simulator error
            return web.Response(status=200)
        finally:
            self._finalise(rec)

    async def _admit(
        self, request: web.Request, rec: TruthRecord
    ) -> tuple[dict[str, Any] | None, web.Response | None]:
        """Auth, JSON body and model checks shared by the /v1 POST endpoints."""
        if self._auth is not None and request.headers.get("Authorization") != self._auth:
            return None, self._reject(rec, 401, "Invalid or missing API key.", "AuthenticationError")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None, self._reject(rec, 400, "Request body is not valid JSON.", "BadRequestError")
        if not isinstance(body, dict):
            return None, self._reject(rec, 400, "Request body must be a JSON object.", "BadRequestError")
        model = body.get("model")
        if model is None:
            model = self._models[0]
        if model not in self._models:
            return None, self._reject(rec, 404, f"The model `{model}` does not exist.", "NotFoundError")
        rec.model = str(model)
        rec.stream = bool(body.get("stream"))
        return body, None

    def _draw(self) -> tuple[str | None, int]:
        """The fault for this request (one uniform draw walks the cumulative rates) and a per-request seed."""
        u = self._rng.random()
        req_seed = self._rng.getrandbits(63)
        acc = 0.0
        for kind, rate in self.cfg.fault_rates().items():
            acc += rate
            if rate and u < acc:
                return kind, req_seed
        return None, req_seed

    def _planned_length(
        self, body: dict[str, Any], rng: Callable[[], random.Random]
    ) -> tuple[int, int | None]:
        """(output tokens, max_tokens) from the request or the configured distribution."""
        cfg = self.cfg
        max_tokens = body.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        max_tokens = int(max_tokens) if isinstance(max_tokens, int | float) else None
        min_tokens = body.get("min_tokens")
        min_tokens = int(min_tokens) if isinstance(min_tokens, int | float) else 0
        sampled: int | None = None
        if cfg.output_tokens is not None:
            mean = cfg.output_tokens
            if cfg.output_dist == "fixed" or cfg.output_spread == 0:
                sampled = mean
            elif cfg.output_dist == "uniform":
                lo = max(1, round(mean * (1 - cfg.output_spread)))
                sampled = rng().randint(lo, max(lo, round(mean * (1 + cfg.output_spread))))
            else:
                sampled = max(1, round(rng().gauss(mean, mean * cfg.output_spread)))
        if max_tokens is not None:
            n = max_tokens if (body.get("ignore_eos") or sampled is None) else min(sampled, max_tokens)
        else:
            n = sampled if sampled is not None else cfg.default_output_tokens
        n = max(n, min_tokens)
        if max_tokens is not None:
            n = min(n, max_tokens)
        return max(0, n), max_tokens

    # ------------------------------------------------------------------ generation endpoints

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "chat", self._generate)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "completions", self._generate)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "embeddings", self._embed_request)

    async def _generate(self, request: web.Request, rec: TruthRecord) -> web.StreamResponse:
        arrival = rec.arrival_ns
        body, rejected = await self._admit(request, rec)
        if rejected is not None or body is None:
            assert rejected is not None
            return rejected
        chat = rec.endpoint == "chat"
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return self._reject(rec, 400, "`messages` must be a non-empty list.", "BadRequestError")
            rec.prompt_tokens = count_message_tokens(messages)
            bad_image = image_error(messages)
            if bad_image is not None:
                return self._reject(rec, 400, bad_image, "BadRequestError")
            users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            prompt = message_text(users[-1].get("content")) if users else messages_text(messages)
        else:
            if "prompt" not in body:
                return self._reject(rec, 400, "`prompt` is required.", "BadRequestError")
            rec.prompt_tokens = count_prompt_tokens(body["prompt"])
            prompt = prompt_text(body["prompt"])
        if self._prefix is not None:
            rec.cached_tokens = self._cached_tokens(body, chat)
        self._stats.prompt_tokens += rec.prompt_tokens
        if rec.prompt_tokens > self.cfg.max_model_len:
            return self._reject(
                rec,
                400,
                f"This model's maximum context length is {self.cfg.max_model_len} tokens; "
                f"the prompt has {rec.prompt_tokens}.",
                "BadRequestError",
            )
        fault, req_seed = self._draw()
        rng_box: list[random.Random] = []

        def rng() -> random.Random:
            if not rng_box:
                rng_box.append(random.Random(req_seed))
            return rng_box[0]

        n, max_tokens = self._planned_length(body, rng)
        if self._maker.natural_length():
            content = self._maker.make(prompt, 0, body)
            if max_tokens is not None and len(content) > max_tokens:
                content = content[:max_tokens]
        else:
            content = self._maker.make(prompt, n)
        finish = "length" if max_tokens is not None and len(content) >= max_tokens else "stop"
        call: ToolCall | None = None
        if chat and isinstance(messages, list) and body.get("tools"):
            call = plan_tool_call(body, messages, self.cfg.tool_policy, self._maker.rules)
            if call is not None:
                content, finish = call.tokens(), "tool_calls"
        reasoning = reasoning_tokens(self.cfg.reasoning_tokens) if chat else []
        rec.reasoning_tokens = len(reasoning)
        rec.planned_tokens = len(reasoning) + len(content)
        headers = {"x-request-id": rec.request_id}

        if fault in ("http_500", "http_429"):
            rec.fault = fault
            if fault == "http_500":
                return self._reject(rec, 500, "Simulated internal server error.", "InternalServerError")
            return self._reject(
                rec,
                429,
                "Simulated rate limit.",
                "RateLimitError",
                **{"Retry-After": f"{self.cfg.retry_after:g}"},
            )

        jitter = self.cfg.jitter
        cfg = self.cfg
        ttft_ns = (cfg.ttft_ms + cfg.ttft_per_token_ms * rec.prompt_tokens) * _MS
        itl_ns = round(cfg.itl_ms * _MS)
        if jitter:
            ttft_ns *= 1.0 + jitter * (2.0 * rng().random() - 1.0)
        first_due = arrival + round(ttft_ns)
        created = int(time.time())

        quirk = self.cfg.reply_quirk
        if quirk is not None and not request.path.startswith("/sim/redirected/"):
            quirky = await self._quirk(request, rec, quirk)
            if quirky is not None:
                return quirky
        if self.capacity is not None:  # wait for a batch slot (FIFO); the schedule starts at admission
            need = rec.prompt_tokens + rec.planned_tokens
            admitted = await self.capacity.admit(arrival, need, request.transport)
            if admitted is None:
                rec.outcome = "client_closed"
                return web.Response(status=200)
            rec.queue_ns = admitted - arrival
            first_due += rec.queue_ns
            itl_ns = self.capacity.itl_ns
        if not rec.stream or quirk == "json_for_stream":
            return await self._whole(
                request, rec, chat, content, reasoning, finish, fault, first_due, itl_ns, created, call
            )

        opts = body.get("stream_options") or {}
        include_usage = bool(opts.get("include_usage")) if isinstance(opts, dict) else False
        continuous = bool(opts.get("continuous_usage_stats")) if isinstance(opts, dict) else False
        if not cfg.stream_usage:
            include_usage = continuous = False
        k = cfg.tokens_per_chunk
        chunks: list[tuple[bool | None, str, int]] = [
            (True, "".join(reasoning[j : j + k]), len(reasoning[j : j + k]))
            for j in range(0, len(reasoning), k)
        ]
        if call is not None:
            chunks += call.stream_pieces()
        else:
            chunks += [
                (False, "".join(content[j : j + k]), len(content[j : j + k]))
                for j in range(0, len(content), k)
            ]
        if not content:
            chunks.append((False, "", 0))
        obj = b"chat.completion.chunk" if chat else b"text_completion"
        base = b'data: {"id":%b,"object":"%b","created":%d,"model":%b,' % (
            orjson.dumps(rec.request_id),
            obj,
            created,
            orjson.dumps(rec.model),
        )
        ctype = "text/plain; charset=utf-8" if quirk == "text_plain" else "text/event-stream"
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": ctype, "Cache-Control": "no-cache", **headers},
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        request.writer.send_headers()
        transport = request.transport
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        if fault in _MID_STREAM:
            rec.fault = fault
        if transport is None or transport.is_closing() or self._ticker is None:
            rec.outcome = "client_closed"
            self._finalise(rec)
            return resp
        stream = _Stream(
            self,
            rec,
            transport,
            base,
            chat,
            chunks,
            finish,
            include_usage,
            continuous,
            fault,
            itl_ns,
            rng() if jitter else None,
            jitter,
            fut,
        )
        key = id(stream)
        self._active[key] = stream
        self._ticker.schedule(first_due, stream)
        try:
            eof = await fut
        finally:
            self._active.pop(key, None)
            if not fut.done():
                fut.cancel()
            if stream.rec.outcome == "pending":
                stream.rec.outcome = "client_closed"
            self._finalise(rec)
        if eof:
            try:
                await resp.write_eof()
            except ConnectionError:
                pass
        return resp

    async def _quirk(self, request: web.Request, rec: TruthRecord, quirk: str) -> web.StreamResponse | None:
        """``--reply-quirk`` answers that replace the generation (None: generate, maybe oddly labelled)."""
        if quirk.startswith("redirect_"):
            rec.status = int(quirk.rpartition("_")[2])
            rec.outcome = quirk
            return web.Response(
                status=rec.status,
                headers={"Location": "/sim/redirected" + request.path_qs, "x-request-id": rec.request_id},
            )
        if quirk == "empty_stream" and rec.stream:
            rec.outcome = quirk
            return web.Response(body=_DONE, content_type="text/event-stream")
        return None

    async def _redirected(self, request: web.Request) -> web.StreamResponse:
        """Where ``--reply-quirk redirect_*`` points: a POST is served as usual; a GET (what a POST becomes
        when a client follows 301/302/303) is answered 200 with a completion-shaped body, as a naive server
        or a cache might, so that a client which follows it silently counts a request that never ran."""
        tail = request.path[len("/sim/redirected") :]
        if request.method == "POST":
            endpoint = "chat" if tail.endswith("/chat/completions") else "completions"
            return await self._serve(request, endpoint, self._generate)
        body = {
            "id": "redirected",
            "object": "chat.completion",
            "model": self._models[0],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "moved"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return web.json_response(body)

    async def _wait_until(self, due_ns: int) -> None:
        """Sleep until ``due_ns`` through the shared ticker (no per-request timer)."""
        if self._ticker is None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.add(fut)
        try:
            self._ticker.schedule(due_ns, _Waiter(fut))
            await fut
        finally:
            self._pending.discard(fut)

    async def _hold_then_abort(self, request: web.Request, rec: TruthRecord) -> web.StreamResponse:
        """Stall a non-stream request: answer nothing until the client leaves or ``stall_max_s`` passes."""
        deadline = perf_counter_ns() + self.stall_max_ns
        transport = request.transport
        while transport is not None and not transport.is_closing() and perf_counter_ns() < deadline:
            await self._wait_until(perf_counter_ns() + _STALL_POLL_NS)
        if transport is not None:
            transport.abort()
        rec.outcome = "stall"
        self._finalise(rec)
        return web.Response(status=200)

    async def _whole(
        self,
        request: web.Request,
        rec: TruthRecord,
        chat: bool,
        content: list[str],
        reasoning: list[str],
        finish: str,
        fault: str | None,
        first_due: int,
        itl_ns: int,
        created: int,
        call: ToolCall | None = None,
    ) -> web.StreamResponse:
        """A non-stream response, released when the last token would have been generated."""
        ntok = len(reasoning) + len(content)
        await self._wait_until(first_due + max(0, ntok - 1) * itl_ns)
        headers = {"x-request-id": rec.request_id}
        if request.transport is None or request.transport.is_closing():
            rec.outcome = "client_closed"  # it left while "generating": nothing to send
            return web.Response(status=200)
        if fault == "drop":
            rec.fault = fault
            if request.transport is not None:
                request.transport.abort()
            rec.outcome = "drop"
            self._finalise(rec)
            return web.Response(status=200)
        if fault == "stall":
            rec.fault = fault
            return await self._hold_then_abort(request, rec)
        usage: dict[str, Any] = {
            "prompt_tokens": rec.prompt_tokens,
            "completion_tokens": ntok,
            "total_tokens": rec.prompt_tokens + ntok,
        }
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(reasoning)}
        if rec.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": rec.cached_tokens}
        text = "".join(content)
        if self.cfg.usage_fault is not None:
            from evalscope.sim.quirks import bad_usage

            usage = bad_usage(self.cfg.usage_fault, rec.prompt_tokens, ntok)
        choice: dict[str, Any]
        if chat:
            message: dict[str, Any] = (
                {"role": "assistant", "content": text} if call is None else call.message()
            )
            if reasoning:
                message["reasoning_content"] = "".join(reasoning)
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        payload = {
            "id": rec.request_id,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": rec.model,
            "choices": [choice],
            "usage": usage,
        }
        if self.cfg.timings:
            prompt_ns = first_due - rec.arrival_ns
            payload["timings"] = orjson.loads(
                timings_json(
                    rec.prompt_tokens - (rec.cached_tokens or 0),
                    prompt_ns,
                    ntok,
                    max(0, perf_counter_ns() - first_due),
                    max(1, -(-ntok // self.cfg.tokens_per_chunk)),
                    self.cfg.draft_acceptance,
                )
            )
        raw = orjson.dumps(payload)
        if fault == "malformed":
            rec.fault = fault
            raw = raw[: max(1, len(raw) // 2)]
        t = perf_counter_ns()
        rec.first_token_ns = t
        rec.completion_tokens = ntok
        rec.outcome = fault if fault == "malformed" else "ok"
        rec.end_ns = t
        self._finalise(rec)
        return web.Response(body=raw, content_type="application/json", headers=headers)

    # ------------------------------------------------------------------ other endpoints

    async def _embed_request(self, request: web.Request, rec: TruthRecord) -> web.StreamResponse:
        arrival = rec.arrival_ns
        body, rejected = await self._admit(request, rec)
        if rejected is not None or body is None:
            assert rejected is not None
            return rejected
        inp = body.get("input")
        if isinstance(inp, str) or (isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp)):
            inputs: list[Any] = [inp]
        elif isinstance(inp, list) and inp:
            inputs = list(inp)
        else:
            return self._reject(rec, 400, "`input` must be a string or a non-empty list.", "BadRequestError")
        texts = [x if isinstance(x, str) else " ".join(str(t) for t in x) for x in inputs]
        rec.prompt_tokens = sum(count_prompt_tokens(x) for x in inputs)
        self._stats.prompt_tokens += rec.prompt_tokens
        fault, _ = self._draw()
        if fault == "http_500":
            rec.fault = fault
            return self._reject(rec, 500, "Simulated internal server error.", "InternalServerError")
        if fault == "http_429":
            rec.fault = fault
            return self._reject(
                rec,
                429,
                "Simulated rate limit.",
                "RateLimitError",
                **{"Retry-After": f"{self.cfg.retry_after:g}"},
            )
        cfg = self.cfg
        await self._wait_until(
            arrival + round((cfg.ttft_ms + cfg.ttft_per_token_ms * rec.prompt_tokens) * _MS)
        )
        b64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vec = self.embed(text)
            emb: Any = base64.b64encode(array("f", vec).tobytes()).decode() if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        payload = {
            "object": "list",
            "data": data,
            "model": rec.model,
            "usage": {"prompt_tokens": rec.prompt_tokens, "total_tokens": rec.prompt_tokens},
        }
        rec.outcome = "ok"
        rec.end_ns = perf_counter_ns()
        self._finalise(rec)
        return web.Response(
            body=orjson.dumps(payload),
            content_type="application/json",
            headers={"x-request-id": rec.request_id},
        )

    def embed(self, text: str) -> list[float]:
        """A deterministic unit vector for ``text`` (same text, seed and dim give the same vector)."""
        rng = random.Random(prompt_seed(self.cfg.seed, text))
        vec = [rng.gauss(0.0, 1.0) for _ in range(self.cfg.embedding_dim)]
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        mark = {SIM_MARK_HEADER: "1"}  # lets our client know it may send request ids (to us only)
        if self._auth is not None and request.headers.get("Authorization") != self._auth:
            return _error(401, "Invalid or missing API key.", "AuthenticationError", mark)
        data = [
            {
                "id": m,
                "object": "model",
                "created": 0,
                "owned_by": "evalscope-sim",
                "max_model_len": self.cfg.max_model_len,
            }
            for m in self._models
        ]
        return web.Response(
            body=orjson.dumps({"object": "list", "data": data}), content_type="application/json", headers=mark
        )

    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    def _cached_tokens(self, body: dict[str, Any], chat: bool) -> int:
        """Prompt tokens served from the prefix cache (``prefix_cache``), then remember this prompt."""
        assert self._prefix is not None
        if chat:
            ids = token_ids(messages_text(body.get("messages") or []))
        else:
            p = body.get("prompt")
            ids = (
                list(p)
                if isinstance(p, list) and all(isinstance(x, int) for x in p)
                else token_ids(prompt_text(p))
            )
        return self._prefix.lookup_insert(ids)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        """Prometheus text exposition with vLLM's gauge names: running requests (streams and non-stream
        requests being generated), waiting (the capacity model's queue; 0 without one) and KV-cache usage (the
        prompt and generated tokens of running streams over ``kv_cache_tokens``)."""
        streams = list(self._active.values())
        kv = sum(st.rec.prompt_tokens + st.sent_tokens for st in streams) / self.cfg.kv_cache_tokens
        st = self._stats
        text = metrics_text(
            self._models,
            len(streams) + len(self._pending),
            self.capacity.waiting if self.capacity is not None else 0,
            min(1.0, kv),
            st.prompt_tokens,
            st.completion_tokens,
            st.requests,
        )
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def _tokenize(self, request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "Request body is not valid JSON.", "BadRequestError")
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object.", "BadRequestError")
        model = body.get("model")
        if model is not None and model not in self._models:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        if isinstance(body.get("messages"), list):
            text = messages_text(body["messages"])
        elif "prompt" in body:
            text = prompt_text(body["prompt"])
        else:
            return _error(400, "Either `prompt` or `messages` is required.", "BadRequestError")
        ids = token_ids(text)
        out = {"count": len(ids), "max_model_len": self.cfg.max_model_len, "tokens": ids}
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    async def _get_truth(self, request: web.Request) -> web.StreamResponse:
        since = request.query.get("since")
        try:
            recs = self.truth.since(int(since)) if since else list(self.truth.values())
            last = int(request.query.get("last", "0"))
        except ValueError:
            return _error(400, "`since` and `last` must be integers.", "BadRequestError")
        if last > 0:
            recs = recs[-last:]
        if request.query.get("view") == "arrival":  # small: what a client needs to check its send side
            payload = orjson.dumps(
                [
                    {
                        "request_id": r.request_id,
                        "arrival_ns": r.arrival_ns,
                        "kernel_arrival_ns": r.kernel_arrival_ns,
                    }
                    for r in recs
                ]
            )
        else:
            payload = orjson.dumps([r.to_dict() for r in recs])
        if request.query.get("clear") in ("1", "true", "yes"):
            self.truth.clear()
        return web.Response(body=payload, content_type="application/json")

    async def _get_stats(self, request: web.Request) -> web.StreamResponse:
        payload = orjson.dumps(self.stats())
        if request.query.get("reset") in ("1", "true", "yes"):
            self.reset_stats()
        return web.Response(body=payload, content_type="application/json")

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        return _error(404, f"Not found: {request.method} {request.path}", "NotFoundError")
