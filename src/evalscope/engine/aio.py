"""The aiohttp side of the engine: the session factory (``--transport aiohttp``) and its connector.

Imported only when an aiohttp session is made (see :mod:`evalscope.engine._lazy`). Defaults differ from
aiohttp's on purpose: no connection cap (aiohttp's default of 100 per session would silently cap
``--parallel``), a 4 MiB read buffer (long-context streams are not throttled by 64 KiB reads), and three
separate timeouts: connect, idle read (the gap between bytes: a stalled stream ends here, not at a total
timeout minutes later), and an optional total.
"""

from __future__ import annotations

import ssl
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace

    from evalscope.engine.session import Timeouts

#: Set by :class:`TrackingConnector` in the task that asked for a connection: did it come from the keep-alive
#: pool (True) or was it just opened (False)? A context variable, because the connector runs inside the
#: caller's task, and the answer is needed after aiohttp has already released the failed connection.
_CONN_REUSED: ContextVar[bool] = ContextVar("evalscope_conn_reused", default=False)
_USED_MARK = "_evalscope_used"  # attribute set on a connection's protocol once it carried a request


def connection_reused() -> bool:
    """Whether the last connection handed to the current task was a kept-alive one (see ``TrackingConnector``)."""
    return _CONN_REUSED.get()


def reset_connection_reused() -> None:
    """Forget the answer of an earlier request in the current task."""
    _CONN_REUSED.set(False)


class TrackingConnector(aiohttp.TCPConnector):
    """A TCPConnector that records, per task, whether the connection it hands out is a reused one.

    A server may close a kept-alive connection (idle reaping, keep-alive limits) just as we send on it; such a
    request was never received and may be resent. A failure on a fresh connection may not: it tells about the
    server. aiohttp does not say which case a failure was, so the connector marks each connection's protocol
    the first time it is handed out (an attribute: cheaper than a weak set, nothing to clean up).
    """

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature
    ) -> Connection:
        conn = await super().connect(req, traces, timeout)
        proto = conn.protocol
        if proto is not None:
            if getattr(proto, _USED_MARK, False):
                _CONN_REUSED.set(True)
            else:
                setattr(proto, _USED_MARK, True)
                _CONN_REUSED.set(False)
        return conn


def make_session(
    timeouts: Timeouts,
    limit: int = 0,
    read_bufsize: int = 4 * 1024 * 1024,
    fresh: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    proxy: str | None = None,
) -> aiohttp.ClientSession:
    """A ClientSession for many concurrent streams; the caller closes it.

    ``fresh``: every request on a new connection, closed after it (the resend path of :class:`Client`).
    ``ssl_context``: verify TLS with it (default: the system's trust store). ``proxy``: every request through
    it (see ``engine.proxy.proxy_for``; the environment is not read here, so one rule serves both transports).
    """
    ssl_arg: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    connector = (
        TrackingConnector(limit=limit, limit_per_host=0, ttl_dns_cache=300, force_close=True, ssl=ssl_arg)
        if fresh
        else TrackingConnector(
            limit=limit, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60, ssl=ssl_arg
        )
    )
    extra: dict[str, Any] = {"proxy": proxy} if proxy is not None else {}
    timeout = aiohttp.ClientTimeout(
        total=timeouts.total_s, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s, connect=None
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        read_bufsize=read_bufsize,
        max_line_size=1024 * 1024,
        max_field_size=1024 * 1024,
        auto_decompress=True,
        trust_env=False,
        **extra,
    )
