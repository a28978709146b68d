"""The engine's data: what to send (:class:`Request`) and what happened (:class:`RequestRecord`).

Times are integer nanoseconds from one monotonic clock (``time.perf_counter_ns``; CLOCK_MONOTONIC on Linux,
so comparable across processes on one machine). Per-event times are kept in compact ``array('q')`` buffers,
never as Python objects per chunk. Records are ``slots`` dataclasses turned into plain dicts for orjson.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

#: Every kind an :class:`ErrorInfo` may carry.
ERROR_KINDS: tuple[str, ...] = (
    "connect",  # TCP connect refused / reset before the response started
    "dns",  # name resolution failed
    "http_status",  # non-2xx status
    "read_timeout",  # idle gap between bytes longer than the read timeout (stall)
    "total_timeout",  # the whole request exceeded the total timeout
    "incomplete_stream",  # the body ended without [DONE] / finish_reason, or the connection dropped mid-stream
    "malformed_stream",  # an event that is not valid JSON / not the protocol's shape
    "server_error_event",  # the server sent an error object inside the stream
    "empty_stream",  # the stream ended ([DONE]) without any token or finish_reason
    "redirect",  # a 301/302/303 answer to the POST (never followed), or a 307/308 that could not be followed
    "cancelled",  # cut off by an interrupt or the end of a duration (not an error for statistics)
    "client",  # anything else raised on the client side
)

#: Header that carries our request id to the built-in simulator, which keys its truth by it. It is sent only
#: to a server that identified itself as the simulator (:data:`SIM_MARK_HEADER`): real servers get no
#: request-id header from us (llama-cpp-python answers 400 to a non-UUID ``X-Request-Id``; vLLM adopts
#: ``X-Request-Id`` as its own id, so small integers from two runs would collide).
SIM_ID_HEADER = "X-Evalscope-Request-Id"
#: Response header by which the simulator identifies itself (on ``/v1/models``).
SIM_MARK_HEADER = "X-Evalscope-Sim"

#: How many times one request may be resent because its kept-alive connection was closed before any reply
#: byte (both transports). The resend goes on a fresh connection, whose failures are never resent, so 1 is enough.
MAX_RECONNECTS = 1


@dataclass(slots=True)
class ErrorInfo:
    """Why a request failed: a kind from :data:`ERROR_KINDS`, and a message of at most 1 KiB."""

    kind: str
    message: str = ""
    http_status: int | None = None
    exception_type: str | None = None
    retry_after_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message[:1024],
            "http_status": self.http_status,
            "exception_type": self.exception_type,
            "retry_after_s": self.retry_after_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorInfo:
        return cls(
            kind=d["kind"],
            message=d.get("message", ""),
            http_status=d.get("http_status"),
            exception_type=d.get("exception_type"),
            retry_after_s=d.get("retry_after_s"),
        )


@dataclass(slots=True)
class Request:
    """One request, protocol-neutral; the protocol plugin turns it into a body.

    ``prompt`` is used by completions / embeddings (and wrapped as one user message by chat); ``messages``
    is used as-is by chat. ``params`` (temperature, top_p, ``--extra-args``...) is merged into the body last.
    ``scheduled_ns`` is the intended send time (0: "now", set by the engine).
    """

    request_id: int | str = 0
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    min_tokens: int | None = None
    params: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    scheduled_ns: int = 0


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request. ``status`` is ``ok``, ``error`` or ``cancelled``.

    Timestamps (ns, monotonic) follow METRICS.md; a field is ``None`` when the event never happened.
    ``first_choice_ns`` is the first event with non-empty ``choices`` (vLLM's TTFT definition).
    ``event_ns`` holds the time of every token-bearing stream event (first is ``first_token_ns``), and
    ``event_tokens`` the tokens each carried where the server said (continuous usage stats), else empty.
    ``reasoning_tokens`` / ``cached_tokens`` come from the server's usage details, ``timings`` from
    llama.cpp's ``timings`` object (``prompt_n``, ``prompt_ms``, ``predicted_n``, ``predicted_ms``,
    ``draft_n``, ``draft_n_accepted``); each is ``None`` when the server did not send it.
    """

    request_id: int | str
    status: str
    scheduled_ns: int
    sent_ns: int
    first_byte_ns: int | None = None
    first_choice_ns: int | None = None
    first_token_ns: int | None = None
    first_content_ns: int | None = None
    last_token_ns: int | None = None
    end_ns: int | None = None
    http_status: int | None = None
    n_events: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    timings: dict[str, float] | None = None
    token_source: str | None = None
    finish_reason: str | None = None
    event_ns: array[int] = field(default_factory=lambda: array("q"))
    event_tokens: array[int] = field(default_factory=lambda: array("l"))
    text: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    error: ErrorInfo | None = None
    worker: int = 0
    #: why the server's usage was not believed (engine/usage.py); the counted tokens were used instead
    usage_rejected: str | None = None
    #: False when a stream was asked for but a whole body came back: TTFT / ITL / TPOT were not measured
    ttft_measured: bool = True
    #: the Content-Type of a stream accepted as SSE although not labelled text/event-stream
    sse_content_type: str | None = None
    reconnects: int = 0  # resent on a fresh connection: the kept-alive one was closed before any reply byte

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def ttft_ns(self) -> int | None:
        if self.first_token_ns is None or not self.ttft_measured:
            return None
        return self.first_token_ns - self.sent_ns

    def ttfo_ns(self) -> int | None:
        if self.first_content_ns is None or not self.ttft_measured:
            return None
        return self.first_content_ns - self.sent_ns

    def e2e_ns(self) -> int | None:
        return None if self.end_ns is None else self.end_ns - self.sent_ns

    def queue_ns(self) -> int:
        return self.sent_ns - self.scheduled_ns

    def tpot_ns(self) -> float | None:
        """(last_token - first_token) / (N - 1) for N > 1 completion tokens."""
        n = self.completion_tokens
        if not self.ttft_measured:
            return None
        if n is None or n <= 1 or self.first_token_ns is None or self.last_token_ns is None:
            return None
        return (self.last_token_ns - self.first_token_ns) / (n - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSONL; event times are stored relative to ``sent_ns`` to stay short."""
        sent = self.sent_ns
        return {
            "id": self.request_id,
            "status": self.status,
            "scheduled_ns": self.scheduled_ns,
            "sent_ns": sent,
            "first_byte_ns": self.first_byte_ns,
            "first_choice_ns": self.first_choice_ns,
            "first_token_ns": self.first_token_ns,
            "first_content_ns": self.first_content_ns,
            "last_token_ns": self.last_token_ns,
            "end_ns": self.end_ns,
            "http_status": self.http_status,
            "n_events": self.n_events,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_tokens": self.cached_tokens,
            "timings": self.timings,
            "token_source": self.token_source,
            "finish_reason": self.finish_reason,
            "event_offsets_ns": [t - sent for t in self.event_ns],
            "event_tokens": list(self.event_tokens),
            "text": self.text,
            "reasoning": self.reasoning,
            "tool_calls": self.tool_calls,
            "error": None if self.error is None else self.error.to_dict(),
            "worker": self.worker,
            "usage_rejected": self.usage_rejected,
            "ttft_measured": self.ttft_measured,
            "sse_content_type": self.sse_content_type,
            "reconnects": self.reconnects,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RequestRecord:
        sent = d["sent_ns"]
        err = d.get("error")
        return cls(
            request_id=d["id"],
            status=d["status"],
            scheduled_ns=d["scheduled_ns"],
            sent_ns=sent,
            first_byte_ns=d.get("first_byte_ns"),
            first_choice_ns=d.get("first_choice_ns"),
            first_token_ns=d.get("first_token_ns"),
            first_content_ns=d.get("first_content_ns"),
            last_token_ns=d.get("last_token_ns"),
            end_ns=d.get("end_ns"),
            http_status=d.get("http_status"),
            n_events=d.get("n_events", 0),
            prompt_tokens=d.get("prompt_tokens"),
            completion_tokens=d.get("completion_tokens"),
            reasoning_tokens=d.get("reasoning_tokens"),
            cached_tokens=d.get("cached_tokens"),
            timings=d.get("timings"),
            token_source=d.get("token_source"),
            finish_reason=d.get("finish_reason"),
            event_ns=array("q", (sent + o for o in d.get("event_offsets_ns") or ())),
            event_tokens=array("l", d.get("event_tokens") or ()),
            text=d.get("text"),
            reasoning=d.get("reasoning"),
            tool_calls=d.get("tool_calls"),
            error=None if err is None else ErrorInfo.from_dict(err),
            worker=d.get("worker", 0),
            usage_rejected=d.get("usage_rejected"),
            ttft_measured=d.get("ttft_measured", True),
            sse_content_type=d.get("sse_content_type"),
            reconnects=d.get("reconnects", 0),
        )
