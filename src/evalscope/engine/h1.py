"""The built-in HTTP/1.1 transport: ``asyncio.Protocol`` connections, ``httptools`` parsing, no stream objects.

Why not aiohttp on the hot path: per streamed chunk aiohttp wakes the reading task through a StreamReader
(a future, a buffer, a task step); per request it builds a ClientRequest, a ClientResponse, header multidicts,
a timer context. Here a socket read runs ``data_received`` -> one clock reading -> ``httptools`` -> the SSE
decoder -> the protocol's ``parse_event`` -> integers into the record, all inside the event loop's callback.
The sending task sleeps on one future for the whole response.

- Requests are written with a header block encoded once per client (only ``Content-Length`` and the optional
  simulator id vary); ``sent_ns`` is stamped just before ``transport.write``.
- One receive timestamp per ``data_received``, shared by every event that read completed.
- A stream's plain text events (a token's text and nothing else) repeat the same bytes around the text: after
  the second one, that frame is learned (proved by that event's own parse when the frame has no escape and
  its text occurs once in it, else by :func:`~evalscope.engine.protocols.base.learn_frame`'s probes) and an
  event that fits it is read with a few byte comparisons instead of the SSE decoder and a JSON parse.
  Anything else takes the general path. A property test holds the two paths equal.
- Kept-alive connections in a LIFO idle list (in effect one per concurrent slot). A request whose REUSED
  connection closes before any reply byte was never processed: the caller resends it once on a fresh one.
- Timeouts: connect (per new connection), idle read (gap between reads: a lazily re-armed timer, so a read
  costs one assignment, not a timer reset), total (one timer per request).
- TLS through ``loop.create_connection(ssl=...)``. Proxies from the environment: plain-HTTP proxying of
  ``http://`` URLs (absolute-form request target); an ``https://`` URL behind a proxy is refused (the
  aiohttp transport tunnels it). See :func:`evalscope.engine.proxy.proxy_for`.
- Redirects as the aiohttp path: 301/302/303 are reported, 307/308 re-posted (same scheme, at most
  ``MAX_REDIRECTS``, credentials dropped for another host).
"""

from __future__ import annotations

import asyncio
import base64
import ssl as _ssl
import time
import typing
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

import httptools
import orjson

from evalscope.engine.protocols.base import (
    EV_CHOICE,
    EV_CONTENT,
    EV_PLAIN,
    EV_TOKEN,
    NOT_PLAIN,
    ProtocolError,
    StreamState,
    learn_frame,
    text_span,
)
from evalscope.engine.records import (
    MAX_RECONNECTS,
    SIM_ID_HEADER,
    SIM_MARK_HEADER,
    ErrorInfo,
    Request,
    RequestRecord,
)
from evalscope.engine.redact import redact_url, scrub
from evalscope.engine.sse import SSEDecoder, SSEError

if TYPE_CHECKING:
    from evalscope.engine.protocols.base import Protocol as ApiProtocol
    from evalscope.engine.session import Timeouts


class Client(typing.Protocol):
    """What the transport reads from its :class:`evalscope.engine.client.Client` (not imported: no cycle)."""

    url: str
    model: str
    protocol: ApiProtocol
    stream: bool
    keep_text: bool
    timeouts: Timeouts
    worker: int
    send_request_id: bool | None

    @property
    def headers(self) -> dict[str, str]: ...

    def _finish_tokens(self, rec: RequestRecord, st: StreamState, req: Request) -> None: ...


_clock = time.perf_counter_ns

# what the response body is doing
_M_SSE = 0  # streamed events: fed to the SSE decoder read by read
_M_WHOLE = 1  # one JSON body, parsed when complete
_M_SNIFF = 2  # not labelled SSE although a stream was asked for: look at the first bytes
_M_ERROR = 3  # a non-2xx status: keep up to 64 KiB for the error message
_M_DISCARD = (
    4  # a redirect or a prewarm probe: read to the end (so the connection can be reused), keep little
)
_M_RAW = 5  # a plain GET (Client.get): keep the whole body, whatever the status

_SSE_STARTS = (b"data:", b":", b"event:", b"id:", b"retry:")
_ERROR_BODY_MAX = 64 * 1024
_WHOLE_BODY_MAX = 256 * 1024 * 1024
#: After ``[DONE]`` the chunked terminator normally arrives at once; a server that keeps talking past it gets
#: this long before the connection is closed instead of reused (the record is complete already).
_TAIL_S = 1.0
#: Plain-text frames learned per response at most (learn_frame): the first plain event normally does it.
_LEARN_TRIES = 4

#: Response headers kept (lower-case bytes -> str key); the rest are skipped without decoding.
_KEPT_HEADERS: dict[bytes, str] = {
    k.encode(): k
    for k in (
        "content-type",
        "content-length",
        "transfer-encoding",
        "content-encoding",
        "connection",
        "retry-after",
        "location",
        SIM_MARK_HEADER.lower(),
    )
}

#: The same lookup for header names as servers commonly spell them (no ``lower()`` per header); the
#: common ones not kept map to None. Anything else falls back to ``_KEPT_HEADERS`` after ``lower()``.
_UNSEEN = ""
_HEADER_NAMES: dict[bytes, str | None] = {
    spelling: key
    for low, key in [
        *_KEPT_HEADERS.items(),
        *((k, None) for k in (b"date", b"server", b"cache-control", b"x-request-id", b"vary", b"keep-alive")),
    ]
    for spelling in (low, low.title())
}

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
_AUTH_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})


def os_words(exc: OSError) -> str:
    """The OS's words for a failed connect ("Connection refused"): asyncio's message only says it failed."""
    import os

    return os.strerror(exc.errno) if isinstance(exc.errno, int) and exc.errno > 0 else str(exc)


def _utf8(b: bytes) -> bool:
    try:
        b.decode()
    except UnicodeDecodeError:
        return False
    return True


class TransportError(Exception):
    """A failure below HTTP: ``kind`` is an :data:`ERROR_KINDS` entry (connect, dns, incomplete_stream...)."""

    def __init__(
        self, kind: str, message: str, exc_type: str | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.exc_type = exc_type
        self.detail = detail  # the OS's words for a failed connect ("Connection refused")


class _Origin:
    """Where and how to connect for one scheme://host:port, and the request-target prefix to use."""

    __slots__ = ("connect_host", "connect_port", "host", "host_header", "port", "proxy_auth", "ssl", "target")

    def __init__(self, url: str, ssl_ctx: _ssl.SSLContext | None, proxy: str | None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        default = 443 if parts.scheme == "https" else 80
        self.port = parts.port or default
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if self.port == default else f"{host}:{self.port}"
        self.ssl: _ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = ssl_ctx or _default_ssl()
        self.connect_host, self.connect_port = self.host, self.port
        self.target = ""  # origin-form: the path alone
        self.proxy_auth: str | None = None
        if proxy is not None:
            p = urlsplit(proxy)
            self.connect_host = p.hostname or ""
            self.connect_port = p.port or (443 if p.scheme == "https" else 80)
            self.target = f"http://{self.host_header}"  # absolute-form through a plain-HTTP proxy
            if p.username is not None:
                raw = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
                self.proxy_auth = "Basic " + base64.b64encode(raw).decode("ascii")


_SSL_DEFAULT: _ssl.SSLContext | None = None


def _default_ssl() -> _ssl.SSLContext:
    global _SSL_DEFAULT
    if _SSL_DEFAULT is None:
        _SSL_DEFAULT = _ssl.create_default_context()
    return _SSL_DEFAULT


class _Exchange:
    """One request's response, driven by its connection's callbacks (``on_*`` are httptools' callbacks)."""

    __slots__ = (
        "body",
        "body_len",
        "conn",
        "dec",
        "done",
        "error",
        "event_ns",
        "event_tokens",
        "finished",
        "got_bytes",
        "headers",
        "last_read_ns",
        "learn",
        "mode",
        "n",
        "now",
        "parse",
        "probe",
        "raw",
        "rec",
        "settled",
        "st",
        "status",
        "stream",
        "tail",
        "text_key",
        "tpl_lp",
        "tpl_ls",
        "tpl_pre",
        "tpl_suf",
        "track_tokens",
        "until_close",
    )

    def __init__(
        self,
        rec: RequestRecord,
        st: StreamState,
        parse: Callable[[bytes, StreamState], int],
        stream: bool,
        track_tokens: bool,
        done: asyncio.Future[None],
        text_key: bytes | None = None,
    ) -> None:
        self.rec = rec
        self.st = st
        self.parse = parse
        self.stream = stream
        self.track_tokens = track_tokens
        self.done = done
        self.conn: _Conn | None = None
        self.dec: SSEDecoder | None = None
        self.event_ns = rec.event_ns
        self.event_tokens = rec.event_tokens
        self.n = 0
        self.now = 0
        self.last_read_ns = 0
        self.got_bytes = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.probe = False  # a prewarm GET: whatever the answer, read it to the end and keep nothing
        self.raw = False  # a plain GET (H1Transport.get): keep the body as it is, whatever the status
        self.tail: asyncio.Future[bool] | None = None  # awaited when the record completed before the body
        self.settled = False  # the body ended (or the connection did): the connection is no longer ours
        self.mode = _M_SSE
        self.body: list[bytes] = []
        self.body_len = 0
        self.until_close = False
        self.error: BaseException | None = None
        self.finished = False  # the record is complete (the connection may still be reading the tail)
        # The frame of this stream's plain text events (learn_frame): set only while the SSE decoder is idle.
        self.text_key = text_key
        self.learn = _LEARN_TRIES if text_key is not None else 0
        self.tpl_pre = self.tpl_suf = b""
        self.tpl_lp = 0  # 0: no frame learned
        self.tpl_ls = 0

    # ---- httptools callbacks -------------------------------------------------------------------------

    # The parser is this exchange's own (see _Conn.start), so bytes past the end of the response in the same
    # read (a server that sends a second, unasked-for response) would call these again: a settled exchange
    # ignores them, as the record is complete and the connection is no longer ours.

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.settled:
            return
        key = _HEADER_NAMES.get(name, _UNSEEN)
        if key is _UNSEEN:
            key = _KEPT_HEADERS.get(name.lower())
        if key is None:
            return  # Date, Server, Cache-Control...: nothing the record or the framing needs
        val = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = val if old is None else f"{old}, {val}"

    def on_headers_complete(self) -> None:
        if self.settled:
            return
        conn = self.conn
        assert conn is not None
        status = conn.parser.get_status_code()  # type: ignore[union-attr]
        if status < 200:
            self.headers = {}  # an interim response (100 Continue...): the real one follows
            return
        self.status = status
        self.rec.http_status = status
        h = self.headers
        self.until_close = (
            "content-length" not in h and "transfer-encoding" not in h and status not in (204, 304)
        )
        if self.raw:
            self.mode = _M_RAW
        elif self.probe or status in _REDIRECTS:
            self.mode = _M_DISCARD
        elif status >= 300:
            self.mode = _M_ERROR
        else:
            ctype = h.get("content-type", "")
            if "text/event-stream" in ctype:
                self.mode = _M_SSE
            elif self.stream and "json" not in ctype:
                self.mode = _M_SNIFF
            else:
                self.mode = _M_WHOLE
            if self.mode != _M_WHOLE and h.get("content-encoding", "identity").lower() != "identity":
                raise ProtocolError(
                    f"compressed event stream (Content-Encoding: {h['content-encoding']}) is not supported by "
                    "the built-in transport; use --transport aiohttp"
                )
            if self.mode == _M_SSE:
                self.dec = SSEDecoder()

    def on_body(self, body: bytes) -> None:
        mode = self.mode
        if mode == _M_SSE:
            if self.finished:
                return
            lp = self.tpl_lp
            if lp:
                # The learned frame: another token's text between the same bytes is a plain text event.
                n = len(body)
                end = n - self.tpl_ls
                if end > lp and body.startswith(self.tpl_pre) and body.endswith(self.tpl_suf):
                    mid = body[lp:end]
                    if len(mid.translate(None, NOT_PLAIN)) == end - lp and (mid.isascii() or _utf8(mid)):
                        st = self.st
                        st.event_tokens = 0
                        if st.keep_text:
                            st.text_parts.append(mid.decode())
                        self.n += 1
                        self.event_ns.append(self.now)
                        if self.track_tokens:
                            self.event_tokens.append(0)
                        return
            dec = self.dec
            data = dec.single(body)  # type: ignore[union-attr]
            if data is not None:
                if not self.learn or not self.n:
                    self._event(data)
                elif not lp:
                    self._event_learning(body, data)
                elif self._event(data) == EV_PLAIN:
                    self._learn(body, len(body) - 2 - len(data))  # another frame than the one learned
            else:
                self.tpl_lp = 0  # the decoder may now hold a partial line: frames are not whole reads
                self._events(dec.feed_lines(body))  # type: ignore[union-attr]
            return
        if self.settled:
            return
        if mode == _M_SNIFF:
            self._sniff(body)
            return
        self.body_len += len(body)
        if mode in (_M_WHOLE, _M_RAW):
            if self.body_len > _WHOLE_BODY_MAX:
                raise ProtocolError(f"response body larger than {_WHOLE_BODY_MAX} bytes")
            self.body.append(body)
        elif mode == _M_ERROR:
            if self.body_len - len(body) < _ERROR_BODY_MAX:
                self.body.append(body)
            else:
                self._finish()  # enough for the message; the connection will not be reused

    def on_message_complete(self) -> None:
        if self.status < 200 or self.settled:
            return
        conn = self.conn
        assert conn is not None
        conn.message_done = True
        self.message_complete()

    # ---- body handling -----------------------------------------------------------------------------

    def message_complete(self) -> None:
        """The body ended (its framing said so, or the close of an until-close body)."""
        mode = self.mode
        if mode == _M_SSE and not self.finished:
            dec = self.dec
            if dec is not None:
                self._events(dec.close())
        elif mode == _M_SNIFF:
            self._sniff_decide()
            if self.mode == _M_SSE:
                self.message_complete()
                return
        if mode == _M_WHOLE or (mode == _M_SNIFF and self.mode == _M_WHOLE):
            self._whole()
        if not self.finished:
            self.rec.end_ns = self.now
            self._finish()
        self._settle()

    def _events(self, events: list[tuple[bytes | None, bytes]]) -> None:
        for _name, data in events:
            self._event(data)
            if self.finished:
                return

    def _event_learning(self, frame: bytes, data: bytes) -> None:
        """:meth:`_event` for a whole-frame event that may teach this stream's frame (tries left; not the first
        token event, which often differs: vLLM's carries the role).

        When the frame holds no backslash and its text occurs nowhere else in it, the event's own parse is the
        check :func:`learn_frame` makes with two probes: with no escapes every JSON string is its raw bytes, so a
        parse that yields exactly that text read it from that one place; and the state before and after shows
        any other effect. Otherwise the probes decide (after the parse, as before)."""
        st = self.st
        span = None
        if (
            st.finish_reason is None
            and st.usage is None
            and st.timings is None
            and not st.tool_calls
            and not st.done
            and st.error is None
        ):
            span = text_span(frame, self.text_key)  # type: ignore[arg-type]
        if span is None:
            self._event(data)  # not plain, or after an event the frame could not stand for
            return
        p, q = span
        text = frame[p + 1 : q]
        if frame.find(b"\\") >= 0 or frame.count(text) != 1:
            if self._event(data) == EV_PLAIN:
                self._learn(frame, len(frame) - 2 - len(data))
            return
        keep = st.keep_text
        parts, reasoning = st.text_parts, st.reasoning_parts
        n_text, n_reasoning, used = len(parts), len(reasoning), st.usage_completion
        st.keep_text = True  # to see the text the protocol reads; what it would not have kept is undone below
        try:
            flags = self._event(data)
        finally:
            st.keep_text = keep
        got = parts[n_text:]
        plain = (
            flags == EV_PLAIN
            and len(got) == 1
            and got[0].encode() == text
            and len(reasoning) == n_reasoning
            and not st.tool_calls
            and st.usage is None
            and st.timings is None
            and st.usage_completion == used
            and st.event_tokens == 0
            and st.finish_reason is None
            and not st.done
            and st.error is None
            and not self.finished
        )
        if not keep:
            del parts[n_text:]
            del reasoning[n_reasoning:]
            st.tool_calls.clear()  # empty before this event (checked above)
        self.learn -= 1
        if plain:
            self.tpl_pre, self.tpl_suf = frame[: p + 1], frame[q:]
            self.tpl_lp, self.tpl_ls = p + 1, len(frame) - q

    def _learn(self, frame: bytes, start: int) -> None:
        """Learn the frame of this stream's plain text events from one, from the second on (the first often
        differs: vLLM's carries the role), a few tries per response at most (a server whose frames differ every
        time gets the general path at a bounded cost). A failed try keeps the frame learned before."""
        st = self.st
        if self.finished or st.finish_reason is not None or st.usage is not None:
            return  # the last event, or one the frame could not stand for: not worth a try
        self.learn -= 1
        got = learn_frame(self.parse, self.text_key, frame, start)  # type: ignore[arg-type]
        if got is not None:
            self.tpl_pre, self.tpl_suf = got
            self.tpl_lp, self.tpl_ls = len(got[0]), len(got[1])

    def _event(self, data: bytes) -> int:
        """One SSE event's data: parsed by the protocol, stamped with this read's receive time; its flags."""
        st = self.st
        flags = self.parse(data, st)
        if flags & EV_TOKEN:
            now = self.now
            rec = self.rec
            if self.n == 0:
                rec.first_token_ns = now
            self.n += 1
            self.event_ns.append(now)
            if self.track_tokens:
                self.event_tokens.append(st.event_tokens)
            if flags & EV_CONTENT and rec.first_content_ns is None:
                rec.first_content_ns = now
        if flags & EV_CHOICE and self.rec.first_choice_ns is None:
            self.rec.first_choice_ns = self.now
        if st.error is not None or st.done:
            self.rec.end_ns = self.now
            self._finish()
        return flags

    def _sniff(self, body: bytes) -> None:
        self.body.append(body)
        self.body_len += len(body)
        head = b"".join(self.body)
        probe = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if (
            len(head) >= 64
            or probe.startswith(_SSE_STARTS)
            or (probe and not any(p.startswith(probe) for p in _SSE_STARTS))
        ):
            self._sniff_decide()

    def _sniff_decide(self) -> None:
        head = b"".join(self.body)
        probe = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if probe.startswith(_SSE_STARTS):
            self.mode = _M_SSE
            self.rec.sse_content_type = self.headers.get("content-type") or "(none)"
            self.body = []
            self.body_len = 0
            self.dec = SSEDecoder()
            if head:
                self._events(self.dec.feed(head))
        else:
            self.mode = _M_WHOLE
            self.body = [head] if head else []

    def _whole(self) -> None:
        raw = b"".join(self.body)
        self.body = []
        enc = self.headers.get("content-encoding", "identity").lower()
        if enc in ("gzip", "x-gzip", "deflate"):
            raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS if "gzip" in enc else zlib.MAX_WBITS)
        rec, st, now = self.rec, self.st, self.now
        if self.stream:
            rec.ttft_measured = False  # a stream was asked for, a whole body came back
        obj = orjson.loads(raw)
        if not isinstance(obj, dict):
            raise ProtocolError("response is not a JSON object")
        flags = self.conn.client_protocol.parse_response(obj, st)  # type: ignore[union-attr]
        if flags & EV_CHOICE:
            rec.first_choice_ns = now
        if flags & EV_TOKEN:
            rec.first_token_ns = rec.last_token_ns = now
            self.event_ns.append(now)
            self.n = 1
        if flags & EV_CONTENT:
            rec.first_content_ns = now
        rec.end_ns = now

    def _finish(self) -> None:
        """The record is complete: wake the sender (the connection may still read the body's tail)."""
        if not self.finished:
            self.finished = True
            self.rec.n_events = self.n
            if not self.done.done():
                self.done.set_result(None)

    def _settle(self) -> None:
        conn = self.conn
        if conn is not None:
            conn.exchange_over(self)
        self.release_tail()

    def release_tail(self) -> None:
        self.settled = True
        tail = self.tail
        if tail is not None and not tail.done():
            tail.set_result(True)

    def fail(self, exc: BaseException) -> None:
        """A failure while the exchange is open (parse error, lost connection, timeout)."""
        if self.error is None and not self.finished:
            self.error = exc
        if not self.finished:
            self.finished = True
            self.rec.n_events = self.n
            if not self.done.done():
                self.done.set_result(None)


class _Conn(asyncio.Protocol):
    """One TCP (or TLS) connection; carries one exchange at a time."""

    def __init__(self, pool: H1Pool) -> None:
        self.pool = pool
        self.client_protocol = pool.client.protocol
        self.transport: asyncio.Transport | None = None
        # One parser per exchange, made in start() with the exchange as its callback object: httptools binds
        # the callbacks when the parser is made, so this saves a forwarding call per header and body read.
        self.parser: httptools.HttpResponseParser | None = None
        self.ex: _Exchange | None = None
        self.used = False  # carried a request already: a reuse when handed out again
        self.closed = False
        self.message_done = False
        self.keep = True
        self.idle_timer: asyncio.TimerHandle | None = None
        self.timer_s = 0.0  # the read timeout the idle timer was armed for

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:  # bytes on an idle connection: nobody asked; it is not reusable
            self.close()
            return
        now = _clock()
        ex.now = now
        ex.last_read_ns = now
        rec = ex.rec
        if not ex.got_bytes:
            ex.got_bytes = True
            rec.first_byte_ns = now
        try:
            self.parser.feed_data(data)  # type: ignore[union-attr]  # set with self.ex in start()
        except httptools.HttpParserCallbackError as exc:  # our callback raised: a malformed event etc.
            ex.fail(exc.__context__ or exc)
            self.close()
        except httptools.HttpParserUpgrade:
            ex.fail(TransportError("incomplete_stream", "the server switched protocols (upgrade)"))
            self.close()
        except Exception as exc:  # noqa: BLE001 - an HTTP parse error: data for the record
            ex.fail(exc)
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timers()
        self.pool.all.discard(self)
        ex = self.ex
        if ex is None:
            return
        ex.release_tail()
        if ex.until_close and ex.status >= 200 and not self.message_done and ex.error is None:
            self.message_done = True
            self.keep = False
            try:
                ex.message_complete()
            except Exception as err:  # noqa: BLE001
                ex.fail(err)
            return
        if not ex.finished:
            if ex.status == 0:
                msg = "server disconnected before the response" if exc is None else str(exc)
                ex.fail(
                    TransportError("connect", msg or "connection lost", type(exc).__name__ if exc else None)
                )
            else:
                msg = "server disconnected mid-response" if exc is None else str(exc)
                ex.fail(
                    TransportError(
                        "incomplete_stream", msg or "connection lost", type(exc).__name__ if exc else None
                    )
                )
        self.ex = None

    # exchange lifecycle

    def start(self, ex: _Exchange, payload: bytes, read_s: float) -> None:
        ex.conn = self
        self.ex = ex
        self.parser = httptools.HttpResponseParser(ex)
        self.message_done = False
        self.used = True
        transport = self.transport
        assert transport is not None
        now = _clock()
        ex.rec.sent_ns = now
        ex.last_read_ns = now
        transport.write(payload)
        if read_s > 0 and (self.idle_timer is None or self.timer_s != read_s):
            # (re-armed when this request's read timeout differs: a prewarm probe uses its own short one)
            if self.idle_timer is not None:
                self.idle_timer.cancel()
            self.timer_s = read_s
            self.idle_timer = asyncio.get_running_loop().call_later(read_s, self._idle_check, read_s)

    def _idle_check(self, read_s: float) -> None:
        """The idle-read timer: one per connection, armed by the first request and re-armed only when it fires
        (for the time left since the last read), so a request or a read never creates or cancels a timer."""
        self.idle_timer = None
        ex = self.ex
        if ex is None or ex.finished:
            return  # idle in the pool: the next request re-arms it
        idle = (_clock() - ex.last_read_ns) / 1e9
        if idle >= read_s * 0.999:
            ex.fail(TimeoutError(f"no data for {read_s:g} s"))
            self.close()
        else:
            self.idle_timer = asyncio.get_running_loop().call_later(read_s - idle, self._idle_check, read_s)

    def exchange_over(self, ex: _Exchange) -> None:
        """The response ended: back to the pool, unless the server or the framing said otherwise."""
        if self.ex is not ex:
            return
        self.ex = None
        parser = self.parser
        if self.closed or not self.keep or parser is None or not parser.should_keep_alive():
            self.close()
        else:
            self.pool.put_idle(self)

    def abandon(self, ex: _Exchange) -> None:
        """The sender gave up on ``ex`` while it was still open (cancelled, error body cut short)."""
        if self.ex is ex:
            self.close()

    def _cancel_timers(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def close(self) -> None:
        self.keep = False
        self._cancel_timers()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort() if self.ex is not None else self.transport.close()


class H1Pool:
    """Kept-alive connections to one origin, for one :class:`Client`."""

    def __init__(self, client: Client, url: str, ssl_ctx: _ssl.SSLContext | None, proxy: str | None) -> None:
        self.client = client
        self.origin = _Origin(url, ssl_ctx, proxy)
        self.idle: list[_Conn] = []
        self.all: set[_Conn] = set()

    def put_idle(self, conn: _Conn) -> None:
        self.idle.append(conn)

    def take_idle(self) -> _Conn | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
            self.all.discard(conn)
        return None

    async def open(self, timeouts: Timeouts) -> _Conn:
        o = self.origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeouts.connect_s):
                _t, conn = await loop.create_connection(
                    lambda: _Conn(self),
                    o.connect_host,
                    o.connect_port,
                    ssl=o.ssl,
                    server_hostname=o.host if o.ssl is not None else None,
                )
        except TimeoutError:
            raise TransportError(
                "connect", f"connect timed out after {timeouts.connect_s:g} s", "ConnectionTimeoutError"
            ) from None
        except OSError as exc:
            import socket

            kind = "dns" if isinstance(exc, socket.gaierror) else "connect"
            where = f"{o.connect_host}:{o.connect_port}"
            raise TransportError(
                kind, f"cannot connect to {where}: {exc}", type(exc).__name__, os_words(exc)
            ) from None
        self.all.add(conn)
        return conn

    def close(self) -> None:
        for conn in list(self.all):
            conn.close()
        self.all.clear()
        self.idle.clear()


class H1Transport:
    """The engine's default transport: builds request bytes, owns the pools, runs one exchange per send."""

    def __init__(
        self, client: Client, ssl_ctx: _ssl.SSLContext | None = None, proxy: str | None = None
    ) -> None:
        self.client = client
        self.ssl_ctx = ssl_ctx
        self.pool = H1Pool(client, client.url, ssl_ctx, proxy)
        parts = urlsplit(client.url)
        self._origin_key = f"{parts.scheme}://{parts.netloc}"
        self._other: dict[str, H1Pool] = {}  # redirect targets on other origins
        self._blocks: dict[tuple[str, str], bytes] = {}
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def _head(self, pool: H1Pool, path: str, headers: dict[str, str], method: str = "POST") -> bytes:
        """The request head up to (not including) Content-Length: encoded once per target for the client's
        own headers (the per-request cost is one dict lookup)."""
        own = headers is self.client.headers
        key = (pool.origin.host_header + path, method)
        if own:
            block = self._blocks.get(key)
            if block is not None:
                return block
        o = pool.origin
        lines = [f"{method} {o.target}{path} HTTP/1.1", f"Host: {o.host_header}", "User-Agent: evalscope"]
        if o.proxy_auth is not None:
            lines.append(f"Proxy-Authorization: {o.proxy_auth}")
        for k, v in headers.items():
            low = k.lower()
            if low in ("host", "content-length", "transfer-encoding", "connection"):
                continue
            if method != "POST" and low == "content-type":
                continue
            lines.append(f"{k}: {v}")
        text = "\r\n".join(lines) + "\r\n"
        if "\n" in text.replace("\r\n", "") or "\r" in text.replace("\r\n", ""):
            raise TransportError("client", "a request header contains a line break")
        block = text.encode("utf-8")
        if own:
            self._blocks[key] = block
        return block

    async def close(self) -> None:
        self.pool.close()
        for p in self._other.values():
            p.close()
        self._other.clear()

    async def prewarm(self, n: int, timeout_s: float) -> int:
        """Open ``n`` connections, each answering one ``GET /v1/models``, and leave them idle in the pool."""
        from evalscope.engine.session import Timeouts, base_url

        client = self.client
        root_path = urlsplit(base_url(client.url)).path + "/v1/models"
        head = self._head(self.pool, root_path, client.headers, "GET") + b"\r\n"
        timeouts = Timeouts(connect_s=timeout_s, read_s=timeout_s)
        loop = asyncio.get_running_loop()

        async def one() -> bool:
            conn: _Conn | None = None
            try:
                async with asyncio.timeout(timeout_s):
                    conn = await self.pool.open(timeouts)
                    rec = RequestRecord(request_id="prewarm", status="error", scheduled_ns=0, sent_ns=0)
                    done: asyncio.Future[None] = loop.create_future()
                    ex = _Exchange(rec, StreamState(), _never_parse, False, False, done)
                    ex.probe = True
                    conn.start(ex, head, timeout_s)
                    await done
                    if ex.error is not None or ex.status < 200:
                        conn.close()
                        return False
                    _note_server(client, ex.headers)
                    return True
            except (TransportError, TimeoutError, OSError):
                if conn is not None:
                    conn.close()
                return False

        results = await asyncio.gather(*(one() for _ in range(max(0, n))))
        return sum(results)

    async def get(self, path: str, timeouts: Timeouts) -> tuple[int, dict[str, str], bytes]:
        """One ``GET path`` on the client's origin with its headers: (status, kept headers, body). Raises
        :class:`TransportError` (connect failures from :meth:`H1Pool.open`, a broken reply) or TimeoutError."""
        client = self.client
        head = self._head(self.pool, path, client.headers, "GET") + b"\r\n"
        loop = asyncio.get_running_loop()
        conn: _Conn | None = None
        try:
            async with asyncio.timeout(timeouts.total_s):
                conn = await self.pool.open(timeouts)
                rec = RequestRecord(request_id="get", status="error", scheduled_ns=0, sent_ns=0)
                done: asyncio.Future[None] = loop.create_future()
                ex = _Exchange(rec, StreamState(), _never_parse, False, False, done)
                ex.raw = True
                conn.start(ex, head, timeouts.read_s)
                await done
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        if ex.error is not None:
            conn.close()
            raise ex.error
        _note_server(client, ex.headers)
        return ex.status, ex.headers, b"".join(ex.body)

    async def send(
        self, req: Request, on_cancel: Callable[[RequestRecord], None] | None
    ) -> tuple[RequestRecord, StreamState]:
        """One request (with at most one resend and the 307/308 hops); the caller finishes the record."""
        client = self.client
        body = orjson.dumps(client.protocol.build_body(req, client.model, client.stream))
        extra = f"{SIM_ID_HEADER}: {req.request_id}\r\n".encode() if client.send_request_id else b""
        reconnects = 0
        scheduled = req.scheduled_ns
        pool, path, headers = self.pool, self.path, client.headers
        hops = 0
        while True:
            rec, st, action, location = await self._once(
                req, on_cancel, pool, path, headers, body, extra, scheduled, reconnects
            )
            scheduled = rec.scheduled_ns
            if action == "resend":
                reconnects += 1
                continue
            if action != "redirect":
                return rec, st
            status = rec.http_status or 0
            here = pool_url(pool, path)
            target = urljoin(here, location) if location else None
            if status in (307, 308) and target is not None and hops < MAX_REDIRECTS:
                new, old = urlsplit(target), urlsplit(here)
                if new.scheme == old.scheme:
                    if new.netloc != old.netloc:
                        headers = {k: v for k, v in headers.items() if k.lower() not in _AUTH_HEADERS}
                    pool = self._pool_for(target)
                    path = (new.path or "/") + (f"?{new.query}" if new.query else "")
                    hops += 1
                    continue
            rec.error = _redirect_error(status, target)
            return rec, st

    def _pool_for(self, url: str) -> H1Pool:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        if key == self._origin_key:
            return self.pool
        pool = self._other.get(key)
        if pool is None:
            from evalscope.engine.proxy import proxy_for

            pool = H1Pool(self.client, url, self.ssl_ctx, proxy_for(url))
            self._other[key] = pool
        return pool

    async def _once(
        self,
        req: Request,
        on_cancel: Callable[[RequestRecord], None] | None,
        pool: H1Pool,
        path: str,
        headers: dict[str, str],
        body: bytes,
        extra: bytes,
        scheduled: int,
        reconnects: int,
    ) -> tuple[RequestRecord, StreamState, str | None, str | None]:
        client = self.client
        timeouts = client.timeouts
        st = StreamState(client.keep_text)
        start = _clock()
        rec = RequestRecord(
            request_id=req.request_id,
            status="error",
            scheduled_ns=scheduled or start,
            sent_ns=start,
            worker=client.worker,
            reconnects=reconnects,
        )
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        proto = client.protocol
        ex = _Exchange(
            rec, st, proto.parse_event, client.stream, proto.continuous_usage, done, proto.text_key
        )
        conn: _Conn | None = None
        total_timer: asyncio.TimerHandle | None = None
        reused = False
        try:
            conn = pool.take_idle() if reconnects == 0 else None
            reused = conn is not None
            if conn is None:
                try:
                    async with asyncio.timeout(timeouts.total_s):
                        conn = await pool.open(timeouts)
                except TimeoutError:
                    raise TransportError(
                        "total_timeout", f"request exceeded {timeouts.total_s:g} s", "TimeoutError"
                    ) from None
            payload = b"".join(
                (self._head(pool, path, headers), extra, b"Content-Length: %d\r\n\r\n" % len(body), body)
            )
            if timeouts.total_s is not None:
                total_timer = loop.call_later(timeouts.total_s, _total_expired, conn, ex, timeouts.total_s)
            conn.start(ex, payload, timeouts.read_s or 0.0)
            await done
            # ``ex.settled``, not the connection's state: a settled connection may already carry another request
            if not ex.settled and conn.ex is ex and not conn.closed:
                if ex.error is None and st.done and st.error is None:
                    # [DONE] came before the body's end (the chunked terminator in a later segment): read it, so
                    # the connection is reused instead of the next request paying a connect inside its TTFT.
                    # A timer handle, not asyncio.timeout (a Timeout object, a task lookup and a reschedule):
                    # this wait follows a good part of all requests.
                    ex.tail = tail = loop.create_future()
                    timer = loop.call_later(_TAIL_S, _tail_expired, tail)
                    try:
                        if not await tail:
                            conn.abandon(ex)
                    finally:
                        timer.cancel()
                else:
                    conn.abandon(ex)  # an error event or a cut-short error body: the rest is not read
        except asyncio.CancelledError:
            if conn is not None:
                conn.abandon(ex)
            ex.finished = True
            rec.status = "cancelled"
            rec.end_ns = _clock()
            rec.error = ErrorInfo(kind="cancelled", message="cancelled before completion")
            client._finish_tokens(rec, st, req)
            if on_cancel is not None:
                on_cancel(rec)
            raise
        except TransportError as exc:
            rec.error = ErrorInfo(exc.kind, scrub(str(exc))[:1024], None, exc.exc_type)
        finally:
            if total_timer is not None:
                total_timer.cancel()
        if ex.status >= 200:
            _note_server(client, ex.headers)
        err = ex.error
        action: str | None = None
        location: str | None = None
        if err is not None:
            if (
                isinstance(err, TransportError)
                and reused
                and not ex.got_bytes
                and reconnects < MAX_RECONNECTS
            ):
                return rec, st, "resend", None
            rec.error = _error_info(err, rec)
        elif rec.error is not None:
            pass
        elif ex.status in _REDIRECTS:
            action, location = "redirect", ex.headers.get("location")
        elif ex.mode == _M_ERROR:
            raw = b"".join(ex.body)[:1024]
            rec.error = ErrorInfo(
                kind="http_status",
                message=scrub(raw.decode("utf-8", "replace")),
                http_status=ex.status,
                retry_after_s=_retry_after(ex.headers.get("retry-after")),
            )
            if conn is not None:
                conn.abandon(ex)  # only if the error body was cut short: not read to its end
        elif ex.mode == _M_SSE and st.done and ex.n == 0 and st.finish_reason is None and st.error is None:
            st.error = ErrorInfo(
                "empty_stream",
                "the stream ended ([DONE]) without any token or finish_reason",
                rec.http_status,
            )
        if rec.end_ns is None:
            rec.end_ns = _clock()
        return rec, st, action, location


def _note_server(client: Client, headers: dict[str, str]) -> None:
    if client.send_request_id is None:
        client.send_request_id = SIM_MARK_HEADER_LOWER in headers


SIM_MARK_HEADER_LOWER = SIM_MARK_HEADER.lower()


def pool_url(pool: H1Pool, path: str) -> str:
    o = pool.origin
    return f"{'https' if o.ssl else 'http'}://{o.host_header}{path}"


def _never_parse(data: bytes, st: StreamState) -> int:
    return 0


def _tail_expired(tail: asyncio.Future[bool]) -> None:
    """The body's tail did not come within ``_TAIL_S``: the sender gives the connection up."""
    if not tail.done():
        tail.set_result(False)


def _total_expired(conn: _Conn, ex: _Exchange, total_s: float) -> None:
    if not ex.finished:
        ex.fail(TimeoutError(f"request exceeded {total_s:g} s"))
        conn.close()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _redirect_error(status: int, target: str | None) -> ErrorInfo:
    where = redact_url(target) if target else "(no Location header)"
    if status in (307, 308):
        why = f"more than {MAX_REDIRECTS} redirects, or one to another scheme or no Location"
    else:
        why = "a POST is never re-sent as a body-less GET"
    return ErrorInfo(
        "redirect",
        f"HTTP {status} redirect to {where} not followed ({why}); point --url at the final URL",
        status,
    )


def _error_info(err: BaseException, rec: RequestRecord) -> ErrorInfo:
    status = rec.http_status
    name = type(err).__name__
    if isinstance(err, TransportError):
        return ErrorInfo(err.kind, scrub(str(err))[:1024], status, err.exc_type or name)
    if isinstance(err, TimeoutError):
        msg = str(err)
        kind = "total_timeout" if msg.startswith("request exceeded") else "read_timeout"
        return ErrorInfo(kind, msg, status, name)
    if isinstance(err, ProtocolError | SSEError | orjson.JSONDecodeError | zlib.error):
        return ErrorInfo("malformed_stream", scrub(str(err))[:1024], status, name)
    if isinstance(err, httptools.HttpParserError):
        kind = "incomplete_stream" if status else "connect"
        return ErrorInfo(kind, scrub(f"invalid HTTP response: {err}")[:1024], status, name)
    return ErrorInfo("client", scrub(repr(err))[:1024], status, name)
