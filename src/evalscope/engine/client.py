"""Send one request and return one :class:`RequestRecord`: the engine's only hot path.

``Client.send`` never raises for a failed request (failures are data, with an :class:`ErrorInfo`); only
cancellation propagates, after the cancelled record has been handed to ``on_cancel`` so that nothing
already measured is lost. Per stream read it takes one clock reading, feeds the SSE decoder, and folds each
event into integer timestamps and an ``array('q')`` of event times: no per-chunk objects are retained.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from evalscope.engine.protocols.base import (
    EV_CHOICE,
    EV_CONTENT,
    EV_TOKEN,
    Protocol,
    ProtocolError,
    StreamState,
)
from evalscope.engine.protocols.base import get_protocol as _get_protocol
from evalscope.engine.records import (
    MAX_RECONNECTS,
    SIM_ID_HEADER,
    SIM_MARK_HEADER,
    ErrorInfo,
    Request,
    RequestRecord,
)
from evalscope.engine.redact import redact_url, register_secret, register_url_secrets, scrub
from evalscope.engine.session import Timeouts, normalize_url
from evalscope.engine.sse import SSEDecoder, SSEError
from evalscope.engine.usage import check_usage, limit_of

if TYPE_CHECKING:
    import aiohttp

    from evalscope.engine.h1 import H1Transport
else:
    from evalscope.engine._lazy import LazyModule

    aiohttp = LazyModule("aiohttp")  # the aiohttp transport's paths only: the built-in one never imports it

#: ``--transport`` choices: our own HTTP/1.1 client (evalscope.engine.h1), or aiohttp (the fallback).
TRANSPORTS: tuple[str, ...] = ("builtin", "aiohttp")
#: What ``Client(transport=None)`` uses (tests switch it to run the same checks over both transports).
DEFAULT_TRANSPORT = "builtin"


def _checked_proxy(url: str, transport: str) -> str | None:
    """The environment's proxy for ``url``; refused (one line) where the chosen transport cannot use it."""
    from evalscope.engine.proxy import proxy_for
    from evalscope.errors import ConfigError

    if transport not in TRANSPORTS:
        raise ConfigError(f"unknown transport {transport!r}", f"use one of: {', '.join(TRANSPORTS)}")
    proxy = proxy_for(url)
    if (
        proxy is not None
        and transport == "builtin"
        and not (url.startswith("http://") and proxy.startswith("http://"))
    ):
        raise ConfigError(
            f"a proxy is set for {redact_url(url)} ({redact_url(proxy)}): the built-in transport proxies only "
            "http:// URLs through an http:// proxy",
            "pass --transport aiohttp (it tunnels https through an http:// proxy), or list the host in NO_PROXY",
        )
    return proxy


_clock = time.perf_counter_ns


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from inference servers; treated as "no hint"


def _lost_before_reply(exc: BaseException, rec: RequestRecord) -> bool:
    """True when the server closed a REUSED connection before any byte of the reply: never processed.

    A kept-alive connection can be closed by the server (idle reaping, keep-alive limits) just as a request is
    written on it; the request then fails with "Server disconnected" or "Can not write request body" although
    the server never saw it. Anything else (a fresh connection, a partial reply, a status line) is not this case.
    """
    if rec.http_status is not None or rec.first_byte_ns is not None or rec.reconnects >= MAX_RECONNECTS:
        return False
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        if not isinstance(exc.message, str):  # aiohttp passes the partly parsed reply when bytes had arrived
            return False
    elif isinstance(exc, aiohttp.ClientConnectorError) or not isinstance(
        exc, aiohttp.ClientOSError | aiohttp.ClientConnectionResetError
    ):
        return False
    from evalscope.engine.aio import connection_reused

    return connection_reused()


class GetFailed(Exception):
    """:meth:`Client.get` got no answer. ``kind``: ``dns`` (the host does not resolve), ``connect`` (nothing
    listening, refused, unreachable), ``timeout``, or ``other`` (the connection broke, a garbled reply)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Client:
    """One endpoint + protocol + credentials, sharing one aiohttp session across all requests.

    Args:
        url: endpoint URL, ``/v1`` base or bare host (normalised with the protocol's default path).
        model: model name sent in the body.
        api: protocol name (``openai``, ``openai-completions``, ``openai-embeddings``, plugins) or instance.
        api_key: sent as ``Authorization: Bearer``; registered for redaction, never stored in records.
        keep_text: keep generated text / reasoning / tool calls in records (eval does, perf does not).
        send_request_id: send the request id in ``X-Evalscope-Request-Id`` (the simulator keys its truth by it):
            None (default) only once the server has identified itself as the simulator (see :meth:`identify`),
            True always, False never. Real servers get no request-id header.

    A request whose kept-alive connection the server closed before any byte of the reply is resent once on a
    fresh connection and counted in ``RequestRecord.reconnects``, not as a failure (see :func:`_lost_before_reply`).
    That needs to know whether a connection was reused, which the client's own session tells (``make_session``);
    with a ``session`` passed in that was made otherwise, nothing is ever resent.
    """

    def __init__(
        self,
        url: str,
        model: str,
        api: str | Protocol = "openai",
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        stream: bool = True,
        keep_text: bool = False,
        continuous_usage: bool = False,
        send_request_id: bool | None = None,
        session: aiohttp.ClientSession | None = None,
        worker: int = 0,
        transport: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.protocol: Protocol = api if isinstance(api, Protocol) else _get_protocol(api, continuous_usage)
        self.url = normalize_url(url, self.protocol.default_path)
        register_url_secrets(self.url)
        self.model = model
        self.stream = stream and self.protocol.supports_stream
        self.keep_text = keep_text
        self.timeouts = timeouts or Timeouts()
        self.send_request_id = send_request_id
        self._identifying: asyncio.Future[bool] | None = None
        self._fresh_session: aiohttp.ClientSession | None = None
        self.worker = worker
        self._headers: dict[str, str] = {"Content-Type": "application/json"}
        if self.stream:
            self._headers["Accept"] = "text/event-stream"
        for k, v in (headers or {}).items():
            self._headers[k] = v
            if k.lower() in ("authorization", "x-api-key", "api-key", "cookie"):
                register_secret(v)
                register_secret(v.split(" ", 1)[-1])
        if api_key:
            register_secret(api_key)
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.url = self._take_userinfo(self.url)
        self._session = session
        self._own_session = session is None
        self._ssl = ssl_context
        transport = transport or DEFAULT_TRANSPORT
        self._proxy = _checked_proxy(self.url, transport)
        self._h1: H1Transport | None = None
        if transport == "builtin" and session is None:  # a session passed in means aiohttp
            from evalscope.engine.h1 import H1Transport

            self._h1 = H1Transport(self, ssl_context, self._proxy)
        self.transport = "builtin" if self._h1 is not None else "aiohttp"

    def _take_userinfo(self, url: str) -> str:
        """Move ``user:key@`` out of the URL into a Basic ``Authorization`` header (unless one is set).

        aiohttp refuses a URL with credentials next to an Authorization header (ValueError on every request),
        and a URL without them cannot leak them into a message.
        """
        from urllib.parse import unquote, urlsplit, urlunsplit

        parts = urlsplit(url)
        if "@" not in parts.netloc:
            return url
        userinfo, _, hostport = parts.netloc.rpartition("@")
        if not any(k.lower() == "authorization" for k in self._headers):
            user, _, password = userinfo.partition(":")
            raw = f"{unquote(user)}:{unquote(password)}".encode()
            basic = "Basic " + base64.b64encode(raw).decode("ascii")
            register_secret(basic.split(" ", 1)[-1])
            self._headers["Authorization"] = basic
        return urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            from evalscope.engine.aio import make_session

            self._session = make_session(self.timeouts, ssl_context=self._ssl, proxy=self._proxy)
        return self._session

    @property
    def headers(self) -> dict[str, str]:
        """Request headers including credentials (never log or save these; see :mod:`redact`)."""
        return self._headers

    async def __aenter__(self) -> Client:
        if self._h1 is None:
            _ = self.session
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._h1 is not None:
            await self._h1.close()
        if self._session is not None and self._own_session:
            await self._session.close()
            self._session = None
        if self._fresh_session is not None:
            await self._fresh_session.close()
            self._fresh_session = None

    @property
    def is_simulator(self) -> bool | None:
        """Whether request ids are sent: the server identified itself as our simulator, or ids were forced on
        or off (None: not known yet)."""
        return self.send_request_id

    def note_server(self, headers: Mapping[str, str]) -> None:
        """Learn from a response's headers whether the server is our simulator (first answer wins)."""
        if self.send_request_id is None:
            self.send_request_id = SIM_MARK_HEADER in headers

    async def identify(self, timeout_s: float = 5.0) -> bool:
        """Whether the server is the evalscope simulator: one ``GET /v1/models`` unless already known.

        Concurrent callers share the one probe; a failed probe means "not the simulator" (no ids are sent).
        """
        if self.send_request_id is not None:
            return self.send_request_id
        if self._identifying is None:
            self._identifying = asyncio.ensure_future(self._probe_identity(timeout_s))
        return await asyncio.shield(self._identifying)

    async def _probe_identity(self, timeout_s: float) -> bool:
        from evalscope.engine.session import base_url

        with contextlib.suppress(GetFailed):
            await self.get(base_url(self.url) + "/v1/models", timeout_s, timeout_s, timeout_s)
        if self.send_request_id is None:
            self.send_request_id = False
        return self.send_request_id

    async def get(
        self, url: str, connect_s: float = 5.0, read_s: float = 10.0, total_s: float = 15.0
    ) -> tuple[int, Mapping[str, str], bytes]:
        """``GET url`` (a path of this client's server, e.g. ``/v1/models``) with the client's headers but no
        ``Content-Type``, on the client's transport: (status, headers, body). Notes whether the server is the
        simulator. Raises :class:`GetFailed` when no answer came."""
        if self._h1 is not None:
            from urllib.parse import urlsplit

            from evalscope.engine.h1 import TransportError

            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            try:
                return await self._h1.get(path, Timeouts(connect_s, read_s, total_s))
            except TimeoutError as exc:
                raise GetFailed("timeout", str(exc) or "timed out") from None
            except TransportError as exc:
                if exc.exc_type == "ConnectionTimeoutError":
                    raise GetFailed("timeout", str(exc)) from None
                detail = exc.detail  # set only by a failed connect (H1Pool.open)
                if exc.kind in ("dns", "connect") and detail is not None:
                    raise GetFailed(exc.kind, detail) from None
                raise GetFailed("other", str(exc)) from None
            except (OSError, ProtocolError) as exc:
                raise GetFailed("other", str(exc)) from None
        headers = {k: v for k, v in self._headers.items() if k.lower() != "content-type"}
        timeout = aiohttp.ClientTimeout(total=total_s, sock_connect=connect_s, sock_read=read_s)
        try:
            async with self.session.get(url, headers=headers, timeout=timeout) as resp:
                self.note_server(resp.headers)
                return resp.status, resp.headers, await resp.read()
        except aiohttp.ClientConnectorDNSError as exc:
            raise GetFailed("dns", str(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            from evalscope.engine.h1 import os_words

            raise GetFailed("connect", os_words(exc.os_error) if exc.os_error else str(exc)) from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise GetFailed("timeout", str(exc) or "timed out") from None
        except aiohttp.ClientError as exc:
            raise GetFailed("other", str(exc)) from None

    def _fresh(self) -> aiohttp.ClientSession:
        """A session whose every request opens (and then closes) its own connection: the resend path."""
        if self._fresh_session is None:
            from evalscope.engine.aio import make_session

            self._fresh_session = make_session(
                self.timeouts, fresh=True, ssl_context=self._ssl, proxy=self._proxy
            )
        return self._fresh_session

    async def prewarm(self, n: int, timeout_s: float = 10.0) -> int:
        """Open up to ``n`` keep-alive connections (concurrent cheap GETs) before a measured stage.

        A long-running client talks over established connections; without this the first ``n`` requests of a
        run include a TCP (and TLS) handshake in their TTFT, which is the network's cost, not the server's.
        Any answer (even 404) leaves its connection in the pool; failures are ignored. Returns how many
        connections answered.
        """
        from evalscope.engine.session import base_url

        if self._h1 is not None:
            return await self._h1.prewarm(n, timeout_s)
        url = base_url(self.url) + "/v1/models"
        headers = {k: v for k, v in self._headers.items() if k.lower() != "content-type"}
        timeout = aiohttp.ClientTimeout(total=timeout_s)

        async def one() -> bool:
            try:
                async with self.session.get(url, headers=headers, timeout=timeout) as resp:
                    self.note_server(resp.headers)
                    await resp.read()
                    return True
            except (aiohttp.ClientError, TimeoutError):
                return False

        results = await asyncio.gather(*(one() for _ in range(max(0, n))))
        return sum(results)

    async def send(
        self, req: Request, on_cancel: Callable[[RequestRecord], None] | None = None
    ) -> RequestRecord:
        """Send ``req``; return its record. ``on_cancel`` receives the record if the task is cancelled."""
        if self._h1 is not None:
            rec, st = await self._h1.send(req, on_cancel)
            return self._finalize(rec, st, req)
        return await self._send(req, on_cancel, self.session, 0, 0)

    async def _send(
        self,
        req: Request,
        on_cancel: Callable[[RequestRecord], None] | None,
        session: aiohttp.ClientSession,
        scheduled_ns: int,
        reconnects: int,
    ) -> RequestRecord:
        proto = self.protocol
        body = orjson.dumps(proto.build_body(req, self.model, self.stream))
        headers = self._headers
        if self.send_request_id:
            headers = {**headers, SIM_ID_HEADER: str(req.request_id)}
        st = StreamState(self.keep_text)
        from evalscope.engine.aio import reset_connection_reused

        reset_connection_reused()
        sent = _clock()
        rec = RequestRecord(
            request_id=req.request_id,
            status="error",
            scheduled_ns=scheduled_ns or req.scheduled_ns or sent,
            sent_ns=sent,
            worker=self.worker,
            reconnects=reconnects,
        )
        try:
            async with _Post(self, session, body, headers) as resp:
                rec.http_status = resp.status
                if resp.status in _REDIRECTS:
                    rec.end_ns = _clock()
                    rec.error = _redirect_error(resp, self.url)
                    return rec
                if resp.status >= 300:
                    raw = await resp.content.read(64 * 1024)
                    rec.end_ns = _clock()
                    rec.error = ErrorInfo(
                        kind="http_status",
                        message=scrub(raw[:1024].decode("utf-8", "replace")),
                        http_status=resp.status,
                        retry_after_s=_retry_after(resp.headers.get("Retry-After")),
                    )
                    return rec
                ctype = resp.headers.get("Content-Type", "")
                sniffed: _Prefixed | bytes | None = None
                if "text/event-stream" not in ctype and self.stream and "json" not in ctype:
                    sniffed = await _sniff(resp.content)
                if "text/event-stream" in ctype or isinstance(sniffed, _Prefixed):
                    prefixed = sniffed if isinstance(sniffed, _Prefixed) else None
                    if prefixed is not None:
                        rec.sse_content_type = ctype or "(none)"  # valid SSE under another label
                    await self._read_stream(resp, rec, st, prefixed)
                    if st.done and rec.n_events == 0 and st.finish_reason is None and st.error is None:
                        st.error = ErrorInfo(
                            "empty_stream",
                            "the stream ended ([DONE]) without any token or finish_reason",
                            rec.http_status,
                        )
                else:
                    raw = (sniffed or b"") + await resp.read()
                    now = _clock()
                    if self.stream:
                        rec.ttft_measured = False  # a stream was asked for, a whole body came back
                    rec.first_byte_ns = now
                    flags = proto.parse_response(_json_obj(raw), st)
                    if flags & EV_CHOICE:
                        rec.first_choice_ns = now
                    if flags & EV_TOKEN:
                        rec.first_token_ns = rec.last_token_ns = now
                        rec.event_ns.append(now)
                        rec.n_events = 1
                    if flags & EV_CONTENT:
                        rec.first_content_ns = now
                    rec.end_ns = now
        except asyncio.CancelledError:
            rec.status = "cancelled"
            rec.end_ns = _clock()
            rec.error = ErrorInfo(kind="cancelled", message="cancelled before completion")
            self._finish_tokens(rec, st, req)
            if on_cancel is not None:
                on_cancel(rec)
            raise
        except (ProtocolError, SSEError, orjson.JSONDecodeError) as exc:
            rec.error = ErrorInfo(
                "malformed_stream", scrub(str(exc))[:1024], rec.http_status, type(exc).__name__
            )
        except aiohttp.ClientPayloadError as exc:
            rec.error = ErrorInfo(
                "incomplete_stream", scrub(str(exc))[:1024], rec.http_status, type(exc).__name__
            )
        except aiohttp.ClientConnectorDNSError as exc:
            rec.error = ErrorInfo("dns", scrub(str(exc))[:1024], None, type(exc).__name__)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            rec.error = ErrorInfo("connect", scrub(str(exc))[:1024], None, type(exc).__name__)
        except aiohttp.ServerDisconnectedError as exc:
            if _lost_before_reply(exc, rec):
                return await self._send(req, on_cancel, self._fresh(), rec.scheduled_ns, rec.reconnects + 1)
            kind = "connect" if rec.http_status is None else "incomplete_stream"
            rec.error = ErrorInfo(
                kind, scrub(str(exc) or "server disconnected")[:1024], rec.http_status, type(exc).__name__
            )
        except (aiohttp.SocketTimeoutError, TimeoutError) as exc:
            elapsed_s = (_clock() - sent) / 1e9
            total = self.timeouts.total_s
            kind = "total_timeout" if total is not None and elapsed_s >= total * 0.99 else "read_timeout"
            rec.error = ErrorInfo(
                kind,
                f"no data for {self.timeouts.read_s:g} s"
                if kind == "read_timeout"
                else f"request exceeded {total:g} s",
                rec.http_status,
                type(exc).__name__,
            )
        except aiohttp.ClientError as exc:
            if _lost_before_reply(exc, rec):
                return await self._send(req, on_cancel, self._fresh(), rec.scheduled_ns, rec.reconnects + 1)
            kind = "connect" if rec.http_status is None else "incomplete_stream"
            rec.error = ErrorInfo(kind, scrub(str(exc))[:1024], rec.http_status, type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - failures are data: anything else is a client-side error record
            rec.error = ErrorInfo("client", scrub(repr(exc))[:1024], rec.http_status, type(exc).__name__)
        return self._finalize(rec, st, req)

    def _finalize(self, rec: RequestRecord, st: StreamState, req: Request) -> RequestRecord:
        """Token counts from usage or events, and the record's status (shared by both transports)."""
        if rec.end_ns is None:
            rec.end_ns = _clock()
        self._finish_tokens(rec, st, req)
        if rec.error is None:
            if st.error is not None:
                rec.error = st.error
            elif not st.done and st.finish_reason is None:
                rec.error = ErrorInfo(
                    "incomplete_stream",
                    f"stream ended without [DONE] or finish_reason after {rec.n_events} token events",
                    rec.http_status,
                )
            else:
                rec.status = "ok"
        return rec

    async def _read_stream(
        self,
        resp: aiohttp.ClientResponse,
        rec: RequestRecord,
        st: StreamState,
        sniffed: _Prefixed | None = None,
    ) -> None:
        """The per-read loop: one clock reading per read, shared by the events the read completed."""
        dec = SSEDecoder()
        parse = self.protocol.parse_event
        event_ns = rec.event_ns
        event_tokens = rec.event_tokens
        track_tokens = self.protocol.continuous_usage
        content: Any = resp.content if sniffed is None else sniffed
        n = 0
        while True:
            chunk = await content.readany()
            now = _clock()
            if not chunk:
                events = dec.close()
                if not events:
                    break
            else:
                if rec.first_byte_ns is None:
                    rec.first_byte_ns = now
                events = dec.feed(chunk)
            for _name, data in events:
                flags = parse(data, st)
                if flags & EV_TOKEN:
                    if n == 0:
                        rec.first_token_ns = now
                    n += 1
                    event_ns.append(now)
                    if track_tokens:
                        event_tokens.append(st.event_tokens)
                    if flags & EV_CONTENT and rec.first_content_ns is None:
                        rec.first_content_ns = now
                if flags & EV_CHOICE and rec.first_choice_ns is None:
                    rec.first_choice_ns = now
                if st.error is not None or st.done:
                    break
            if st.error is not None or st.done or not chunk:
                break
        rec.n_events = n
        if n:
            rec.last_token_ns = event_ns[-1]
        rec.end_ns = _clock() if not st.done else now
        if st.done and not content.at_eof():
            await _drain_tail(content)

    def _finish_tokens(self, rec: RequestRecord, st: StreamState, req: Request) -> None:
        # Also reached mid-stream (cancel, exception): derive event counts from what was recorded.
        rec.n_events = len(rec.event_ns)
        if rec.n_events:
            rec.last_token_ns = rec.event_ns[-1]
        usage = st.usage
        if usage:
            # Server usage is network input: validated once, on the final usage (see engine/usage.py).
            chk = check_usage(usage, rec.n_events, req.prompt_tokens, limit_of(req.max_tokens, req.params))
            rec.prompt_tokens = chk.prompt_tokens
            rec.completion_tokens = chk.completion_tokens
            rec.reasoning_tokens = chk.reasoning_tokens
            rec.cached_tokens = chk.cached_tokens
            rec.token_source = "usage" if chk.completion_from_usage else "events"
            rec.usage_rejected = chk.rejected
        else:
            rec.prompt_tokens = req.prompt_tokens
            rec.completion_tokens = rec.n_events
            rec.token_source = "events"
        if rec.event_tokens and not any(rec.event_tokens):
            del rec.event_tokens[:]
        rec.finish_reason = st.finish_reason
        rec.timings = st.timings
        if st.keep_text:
            rec.text = "".join(st.text_parts)
            if st.reasoning_parts:
                rec.reasoning = "".join(st.reasoning_parts)
            if st.tool_calls:
                rec.tool_calls = [st.tool_calls[i] for i in sorted(st.tool_calls)]


async def _drain_tail(content: Any) -> None:
    """Read what follows ``[DONE]`` (normally just the chunked-encoding terminator).

    aiohttp closes a connection whose body was not read to the end, so without this about a third of the
    requests (whenever the terminator arrives in a later TCP segment than ``[DONE]``) paid a new TCP connect
    inside the next request's TTFT. Bounded (1 s, 64 KiB) so a server that keeps talking costs little; the
    record is already complete, so any error here only means the connection is not reused.
    """
    left = 64 * 1024
    try:
        async with asyncio.timeout(1.0):
            while left > 0 and not content.at_eof():
                chunk = await content.readany()
                if not chunk:
                    break
                left -= len(chunk)
    except (TimeoutError, aiohttp.ClientError):
        pass


#: A POST answered with 301/302/303 would be re-sent as a body-less GET: never followed. 307/308 keep the
#: method and body and are followed (same scheme, at most ``MAX_REDIRECTS`` hops).
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
_AUTH_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})


def _location(resp: aiohttp.ClientResponse, url: str) -> str | None:
    from urllib.parse import urljoin

    loc = resp.headers.get("Location")
    return urljoin(url, loc) if loc else None


def _redirect_error(resp: aiohttp.ClientResponse, url: str) -> ErrorInfo:
    """A redirect that was not followed: the error names the (redacted) target and what to do."""
    loc = _location(resp, url)
    where = redact_url(loc) if loc else "(no Location header)"
    if resp.status in (307, 308):
        why = f"more than {MAX_REDIRECTS} redirects, or one to another scheme or no Location"
    else:
        why = "a POST is never re-sent as a body-less GET"
    return ErrorInfo(
        "redirect",
        f"HTTP {resp.status} redirect to {where} not followed ({why}); point --url at the final URL",
        resp.status,
    )


class _Post:
    """``session.post`` without aiohttp's redirect handling: 307/308 are re-posted with the body.

    aiohttp (like browsers) turns a POST answered with 301/302/303 into a GET without a body, which a
    server may then answer 200: a request that never ran would be counted as a success. Here nothing but
    307/308 is followed, only to the same scheme, for at most :data:`MAX_REDIRECTS` hops, and credentials
    are not sent to another host. The caller sees the final response (a redirect it must report, if any).
    """

    __slots__ = ("_body", "_client", "_headers", "_resp", "_session")

    def __init__(
        self, client: Client, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]
    ) -> None:
        self._client = client
        self._session = session
        self._body = body
        self._headers = headers
        self._resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        from urllib.parse import urlsplit

        session = self._session
        url = self._client.url
        headers = self._headers
        resp = await session.post(url, data=self._body, headers=headers, allow_redirects=False)
        hops = 0
        while resp.status in (307, 308) and hops < MAX_REDIRECTS:
            nxt = _location(resp, url)
            if nxt is None:
                break
            old, new = urlsplit(url), urlsplit(nxt)
            if new.scheme != old.scheme:
                break
            if new.netloc != old.netloc:
                headers = {k: v for k, v in headers.items() if k.lower() not in _AUTH_HEADERS}
            resp.release()
            url = nxt
            hops += 1
            resp = await session.post(url, data=self._body, headers=headers, allow_redirects=False)
        self._resp = resp
        return resp

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._resp is not None:
            await self._resp.__aexit__(et, e, tb)


class _Prefixed:
    """A response body whose first bytes were already read (to sniff SSE under another Content-Type)."""

    __slots__ = ("_content", "_first")

    def __init__(self, first: bytes, content: aiohttp.StreamReader) -> None:
        self._first: bytes | None = first
        self._content = content

    async def readany(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self._content.readany()

    def at_eof(self) -> bool:
        return self._first is None and self._content.at_eof()


_SSE_STARTS = (b"data:", b":", b"event:", b"id:", b"retry:")


async def _sniff(content: aiohttp.StreamReader) -> _Prefixed | bytes:
    """Read the first bytes of a body that was not labelled ``text/event-stream`` although a stream was asked
    for: SSE (``data:``, a comment, ``event:``...) gives a :class:`_Prefixed` reader to stream from; anything
    else gives the bytes read so far, to be parsed as a whole body."""
    head = b""
    while len(head) < 64:
        chunk = await content.readany()
        if not chunk:
            break
        head += chunk
        probe = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if probe and not any(p.startswith(probe) for p in _SSE_STARTS):
            break  # cannot be SSE any more
        if probe.startswith(_SSE_STARTS):
            break
    probe = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if probe.startswith(_SSE_STARTS):
        return _Prefixed(head, content)
    return head


def _json_obj(raw: bytes) -> dict[str, Any]:
    obj = orjson.loads(raw)
    if not isinstance(obj, dict):
        raise ProtocolError("response is not a JSON object")
    return obj


async def yield_then(func: Callable[..., None], *args: Any) -> None:
    """Yield to the event loop once, then call ``func(*args)`` (also if cancelled during the yield).

    When many streams finish in the same moment (closed-loop streams ending together), finishing each request
    (aggregation, record encoding, dispatching the next one) costs tens of µs. Yielding first lets the loop
    poll again, so every other stream's read that became ready meanwhile is stamped (in its read callback
    with the built-in transport, in its resumed task with aiohttp) before that work runs: a burst of
    completions does not inflate the later streams' last-token and end times.
    """
    try:
        await asyncio.sleep(0)
    finally:
        func(*args)
