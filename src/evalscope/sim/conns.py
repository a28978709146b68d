"""Real servers' connection habits for the simulator, each off by default.

Clients meet these on real servers and never on a simulator that keeps every connection open forever:

- a keep-alive limit: after ``keepalive_max_requests`` requests the reply says ``Connection: close`` and the
  server closes the connection (cpp-httplib's ``keep_alive_max_count``, 100 by default, 5 in old versions);
- idle reaping: a kept-alive connection (one that has served a request) without a new request for
  ``idle_timeout_ms`` is closed by the server
  (cpp-httplib's ``keep_alive_timeout``, 5 s). The client learns of the close only when the FIN reaches it and
  its event loop reads it; a request written before that is lost unanswered ("Server disconnected", "Can not
  write request body"). ``fin_delay_ms`` widens that window as a slow network or a busy client does, so that
  tests can produce the race at will;
- ``Connection: close`` on a fraction of replies (``close_rate``);
- an unannounced close right after a fraction of replies (``silent_close_rate``): llama-server (cpp-httplib
  0.58) was seen doing this after streamed replies; back to back on one connection, 2 of 20 streamed requests
  failed with "Server disconnected", none with a 200 ms pause between them. ``fin_delay_ms`` is again the
  window in which the client does not know yet;
- a bounded pool of serving workers (``max_workers``): as in cpp-httplib, a worker owns a connection from the
  moment it takes it off the queue until the connection closes (keep-alive limit, idle reaping, or the client).
  Other connections wait, unread (their request sits in the kernel's buffer); with ``worker_queue`` set, a
  connection that finds that many already waiting is accepted and closed at once (cpp-httplib's
  ``max_queued_requests``; llama-server sets none, so there they wait);
- UUID-only ``X-Request-Id`` (``uuid_request_ids``): 400 with an empty body otherwise, as llama-cpp-python's
  request-id middleware answers.

Nothing here runs unless one of these options is set: the default server keeps its lean per-request path.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web

if TYPE_CHECKING:
    from evalscope.sim.config import SimConfig

_REQUEST_STARTS = (b"POST", b"GET ", b"PUT ", b"HEAD", b"DELE", b"PATC", b"OPTI")


def wanted(cfg: SimConfig) -> bool:
    """Whether any connection-level behaviour is switched on (else the server skips this module entirely)."""
    return (
        cfg.keepalive_max_requests is not None
        or cfg.idle_timeout_ms is not None
        or cfg.close_rate > 0
        or cfg.silent_close_rate > 0
        or cfg.max_workers is not None
    )


class ConnPolicy:
    """The shared state of the connection behaviours: the worker pool, its queue, and counters."""

    def __init__(self, cfg: SimConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.max_requests = cfg.keepalive_max_requests
        self.idle_s = None if cfg.idle_timeout_ms is None else cfg.idle_timeout_ms / 1000.0
        self.fin_delay_s = cfg.fin_delay_ms / 1000.0
        self.close_rate = cfg.close_rate
        self.silent_close_rate = cfg.silent_close_rate
        self.workers = cfg.max_workers
        self.queue_max = cfg.worker_queue
        self.busy = 0
        self.waiting: deque[ConnMixin] = deque()
        self._rng = random.Random(cfg.seed ^ 0x5EED)
        # counters (``/sim/stats`` -> ``connections``)
        self.opened = 0
        self.dropped = 0  # accepted and closed at once: the worker queue was full
        self.queued = 0  # had to wait for a worker
        self.reaped = 0  # closed by idle reaping
        self.silent_closes = 0  # closed right after a reply that did not say so
        self.lost = 0  # requests that arrived on a connection already reaped: never answered
        self.closing_replies = 0  # replies sent with ``Connection: close``

    def snapshot(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "dropped": self.dropped,
            "queued": self.queued,
            "waiting": len(self.waiting),
            "busy_workers": self.busy,
            "reaped": self.reaped,
            "silent_closes": self.silent_closes,
            "lost": self.lost,
            "closing_replies": self.closing_replies,
        }

    # ---- connection lifecycle (called by ConnMixin) ---------------------------------------------------

    def opened_conn(self, h: ConnMixin, transport: asyncio.Transport) -> bool:
        """A new connection: give it a worker, queue it (reads paused) or drop it. False: dropped."""
        self.opened += 1
        if self.workers is None or self.busy < self.workers:
            self.busy += 1
            h.sim_has_worker = True
            return True
        if self.queue_max is not None and len(self.waiting) >= self.queue_max:
            self.dropped += 1
            transport.close()
            return False
        self.queued += 1
        transport.pause_reading()
        self.waiting.append(h)
        return True

    def closed_conn(self, h: ConnMixin) -> None:
        """The connection is gone: free its worker (or its place in the queue)."""
        self._disarm(h)
        if h.sim_has_worker:
            h.sim_has_worker = False
            self._free_worker()
        else:
            try:
                self.waiting.remove(h)
            except ValueError:
                pass

    def request_started(self, h: ConnMixin, transport: asyncio.Transport) -> bool:
        """The first bytes of a request arrived. False: the connection was already reaped; it is reset."""
        if h.sim_reaped:
            self.lost += 1
            transport.abort()
            return False
        self._disarm(h)
        h.sim_busy = True
        return True

    def reply_done(self, h: ConnMixin) -> None:
        h.sim_busy = False
        if h.sim_close_after:
            if self._close_unannounced(h):
                self.silent_closes += 1
        elif h.sim_has_worker:
            self._arm_idle(h)

    def on_prepare(self, request: web.BaseRequest, resp: web.StreamResponse) -> None:
        """aiohttp's ``on_response_prepare``: the headers are computed but not yet written."""
        h = request.protocol
        n = getattr(h, "sim_served", 0) + 1
        if isinstance(h, ConnMixin):
            h.sim_served = n
        close = self.max_requests is not None and n >= self.max_requests
        if not close and self.close_rate:
            close = self._rng.random() < self.close_rate
        if close:
            self.closing_replies += 1
            resp.headers["Connection"] = "close"
            resp.force_close()
        elif self.silent_close_rate and isinstance(h, ConnMixin):
            h.sim_close_after = self._rng.random() < self.silent_close_rate

    # ---- internals -------------------------------------------------------------------------------------

    def _free_worker(self) -> None:
        self.busy -= 1
        while self.waiting:
            h = self.waiting.popleft()
            t = h.sim_transport
            if t is None or t.is_closing():
                continue
            self.busy += 1
            h.sim_has_worker = True
            t.resume_reading()
            return

    def _arm_idle(self, h: ConnMixin) -> None:
        # Armed after each reply only: a kept-alive connection is reaped, a new one gets its first request in.
        if self.idle_s is not None:
            self._disarm(h)
            h.sim_idle_handle = self.loop.call_later(self.idle_s, self._reap, h)

    @staticmethod
    def _disarm(h: ConnMixin) -> None:
        if h.sim_idle_handle is not None:
            h.sim_idle_handle.cancel()
            h.sim_idle_handle = None

    def _reap(self, h: ConnMixin) -> None:
        """Idle too long: the server closes the connection (its FIN reaches the client ``fin_delay`` later)."""
        h.sim_idle_handle = None
        if not h.sim_busy and self._close_unannounced(h):
            self.reaped += 1

    def _close_unannounced(self, h: ConnMixin) -> bool:
        """The server closes the connection on its own; the client learns of it ``fin_delay`` later."""
        t = h.sim_transport
        if t is None or t.is_closing() or h.sim_reaped:
            return False
        self._disarm(h)
        h.sim_reaped = True
        if h.sim_has_worker:
            h.sim_has_worker = False
            self._free_worker()
        if self.fin_delay_s > 0:
            self.loop.call_later(self.fin_delay_s, t.close)
        else:
            t.close()
        return True


class ConnMixin:
    """Mixed into the simulator's connection protocol (an aiohttp ``RequestHandler``) when a policy is set."""

    sim_conns: ConnPolicy | None = None
    sim_transport: asyncio.Transport | None = None
    sim_has_worker = False
    sim_busy = False
    sim_reaped = False
    sim_close_after = False
    sim_served = 0
    sim_idle_handle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        t = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport subclasses
        self.sim_transport = t
        if self.sim_conns is not None:
            self.sim_conns.opened_conn(self, t)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.sim_conns is not None:
            self.sim_conns.closed_conn(self)
        self.sim_transport = None
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        conns, t = self.sim_conns, self.sim_transport
        if (
            conns is not None
            and t is not None
            and data[:4] in _REQUEST_STARTS
            and not conns.request_started(self, t)
        ):
            return
        super().data_received(data)  # type: ignore[misc]

    async def finish_response(self, request: Any, resp: Any, start_time: Any) -> Any:
        try:
            return await super().finish_response(request, resp, start_time)  # type: ignore[misc]
        finally:
            if self.sim_conns is not None:
                self.sim_conns.reply_done(self)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@web.middleware
async def uuid_request_ids(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """llama-cpp-python's request-id check: a present ``X-Request-Id`` must be a UUID, else 400, empty body."""
    rid = request.headers.get("X-Request-Id")
    if rid is not None and not _is_uuid(rid):
        return web.Response(status=400)
    return await handler(request)
