"""Metric definitions (see docs/metrics.md): one function per profile turns a record into samples.

Kept apart from the aggregator so that the definitions can be read, tested and pinned on recorded streams
without any histogram machinery. All values are integer or float nanoseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evalscope.engine.records import RequestRecord

#: Latency metrics of the summary, in the order they are printed.
LATENCY_METRICS: tuple[str, ...] = (
    "ttft",
    "ttfo",
    "tpot",
    "itl",
    "icl",
    "e2e_latency",
    "queue_time",
    "latency_from_schedule",
)


@dataclass(slots=True)
class Samples:
    """Per-request scalar metrics (ns; None when undefined for this request)."""

    ttft: float | None
    ttfo: float | None
    tpot: float | None
    e2e: float | None
    queue: float
    from_schedule: float | None


def scalar_default(rec: RequestRecord) -> Samples:
    """METRICS.md definitions: TTFT at the first token-bearing event, TPOT over completion tokens."""
    sent = rec.sent_ns
    end = rec.end_ns
    return Samples(
        ttft=None if rec.first_token_ns is None else rec.first_token_ns - sent,
        ttfo=None if rec.first_content_ns is None else rec.first_content_ns - sent,
        tpot=rec.tpot_ns(),
        e2e=None if end is None else end - sent,
        queue=sent - rec.scheduled_ns,
        from_schedule=None if end is None else end - rec.scheduled_ns,
    )


def scalar_vllm(rec: RequestRecord) -> Samples:
    """vLLM serving benchmark: TTFT at the first event with non-empty ``choices``; TPOT = (e2e-ttft)/(N-1)."""
    s = scalar_default(rec)
    first = rec.first_choice_ns if rec.first_choice_ns is not None else rec.first_token_ns
    s.ttft = None if first is None else first - rec.sent_ns
    n = rec.completion_tokens
    if s.e2e is not None and s.ttft is not None and n is not None and n > 1:
        s.tpot = (s.e2e - s.ttft) / (n - 1)
    else:
        s.tpot = None
    return s


def itl_spread(rec: RequestRecord, emit: Callable[[float, int], None]) -> None:
    """Per-token ITL: each gap between token-bearing events is spread evenly over the tokens of the later event.

    Tokens per event come from continuous usage stats (``event_tokens``) when present; otherwise, when the
    server's usage says more tokens than events, the average tokens per event; otherwise one. ``emit(value_ns,
    count)`` receives each gap divided by its tokens, with that token count as the weight.
    """
    ev = rec.event_ns
    n = len(ev)
    if n < 2:
        return
    toks = rec.event_tokens
    if len(toks) == n:
        for i in range(1, n):
            k = toks[i]
            gap = ev[i] - ev[i - 1]
            if k <= 1:
                emit(gap, 1)
            else:
                emit(gap / k, k)
        return
    ct = rec.completion_tokens
    if ct is not None and ct > n:
        per = ct / n
        k = max(1, round(per))
        for i in range(1, n):
            emit((ev[i] - ev[i - 1]) / per, k)
        return
    for i in range(1, n):
        emit(ev[i] - ev[i - 1], 1)


def icl_raw(rec: RequestRecord, emit: Callable[[float, int], None]) -> None:
    """Per-chunk gaps between consecutive token-bearing events (vLLM's "ITL")."""
    ev = rec.event_ns
    for i in range(1, len(ev)):
        emit(ev[i] - ev[i - 1], 1)
