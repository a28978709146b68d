"""Metric definitions (see docs/metrics.md): each latency metric is one small class.

A class names its metric, the profiles it serves (``default``, ``vllm``), the other metrics whose values it
reads (``needs``: computed first) and whether it is undefined for a whole, unstreamed body; per-event
metrics (ITL, ICL) also say how to fold a long stream's gaps at once. Adding a metric is one class with
:func:`metric`; the aggregator builds the plan for its profile once (:func:`plan`) and calls each class per
record. Kept apart from the aggregator so that the definitions can be read, tested and pinned on recorded
streams without any histogram machinery. All values are integer or float nanoseconds.

May import: ``engine.records``, numpy; nothing else from evalscope (the histogram is passed in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from evalscope.engine.records import RequestRecord

ALL_PROFILES = frozenset({"default", "vllm"})
#: Profiles whose measurement window starts at the start of dispatch rather than at the first send.
WINDOW_FROM_DISPATCH = frozenset({"vllm"})

Emit = Callable[[float, int], None]


class LatencyMetric:
    """One value per successful request (or None when undefined for it)."""

    name: ClassVar[str]
    profiles: ClassVar[frozenset[str]] = ALL_PROFILES
    #: other metrics' values this one reads from ``vals`` (they are computed before it)
    needs: ClassVar[tuple[str, ...]] = ()
    #: undefined when the server sent a whole body instead of a stream (no per-token timing observed)
    streamed_only: ClassVar[bool] = False

    def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
        raise NotImplementedError

    def columns(self, c: SuccessColumns) -> np.ndarray | None:
        """This metric for many streamed successes at once: ns (int64 for a difference of stamps, float64 for a
        ratio), one per success where it is defined, the same values :meth:`value` gives. None (the default, e.g. a plugin's metric) makes the aggregator call
        :meth:`value` per record instead."""
        return None


#: A missing timestamp or count in :class:`SuccessColumns` (no real value is this negative).
NONE = -(1 << 63)


class SuccessColumns:
    """Streamed successes not yet folded into the histograms, one int64 column per record field (``NONE`` where
    the record had None): what :meth:`LatencyMetric.columns` reads. ``rows`` holds :data:`FIELDS` per record."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "sent",
        "scheduled",
        "first_token",
        "first_content",
        "first_choice",
        "last_token",
        "end",
        "tokens",  # completion tokens
    )

    def __init__(self, rows: np.ndarray) -> None:
        col = rows.reshape(-1, len(self.FIELDS)).T
        self.sent: np.ndarray = col[0]
        self.scheduled: np.ndarray = col[1]
        self.first_token: np.ndarray = col[2]
        self.first_content: np.ndarray = col[3]
        self.first_choice: np.ndarray = col[4]
        self.last_token: np.ndarray = col[5]
        self.end: np.ndarray = col[6]
        self.tokens: np.ndarray = col[7]


def _since(t: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """``t - origin`` (int64 ns) where ``t`` is defined."""
    ok = t != NONE
    since: np.ndarray = t[ok] - origin[ok]
    return since


def _ttft_vllm(c: SuccessColumns) -> np.ndarray:
    """TTFT at the first event with choices, else at the first token (int64, ``NONE`` where neither)."""
    first = np.where(c.first_choice != NONE, c.first_choice, c.first_token)
    ttft: np.ndarray = np.where(first != NONE, first - c.sent, NONE)
    return ttft


class GapMetric:
    """Samples from the gaps between a stream's token-bearing events (streamed responses only)."""

    name: ClassVar[str]
    profiles: ClassVar[frozenset[str]] = ALL_PROFILES
    #: its samples of a stream are the raw gaps (unless :attr:`per_token` and the stream is token-weighted), so
    #: the aggregator may fold many streams' gaps at once; False (e.g. a plugin's metric): per record
    columnar: ClassVar[bool] = False
    #: spreads each gap over the tokens of its event: a stream for which :func:`token_weighted` holds is not
    #: its raw gaps, and is recorded per record
    per_token: ClassVar[bool] = False

    def per_event(self, rec: RequestRecord, emit: Emit) -> None:
        raise NotImplementedError

    def vectorised(self, rec: RequestRecord, gaps: np.ndarray, raw_q: tuple[Any, ...], hist: Any) -> None:
        """A long stream at once: ``gaps`` (ns, float64), ``raw_q`` their quantised form; ``hist`` a Metric."""
        hist.add_quantised(*raw_q)

    def short(self, rec: RequestRecord, gaps: list[int], hist: Any) -> None:
        """A short stream: ``gaps`` are its raw gaps (ns), the same list for all gap metrics (not to be kept)."""
        hist.record_all(gaps)


_REGISTRY: list[type[LatencyMetric] | type[GapMetric]] = []


_M = TypeVar("_M", type[LatencyMetric], type[GapMetric])


def metric(cls: _M) -> _M:
    """Class decorator: register a metric (summary order is registration order of the names)."""
    _REGISTRY.append(cls)
    return cls


@metric
class Ttft(LatencyMetric):
    """Time to the first token-bearing event (METRICS.md)."""

    name = "ttft"
    profiles = frozenset({"default"})
    streamed_only = True

    def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
        return None if rec.first_token_ns is None else rec.first_token_ns - rec.sent_ns

    def columns(self, c: SuccessColumns) -> np.ndarray:
        return _since(c.first_token, c.sent)


@metric
class TtftVllm(LatencyMetric):
    """vLLM serving benchmark: TTFT at the first event with non-empty ``choices``."""

    name = "ttft"
    profiles = frozenset({"vllm"})
    streamed_only = True

    def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
        first = rec.first_choice_ns if rec.first_choice_ns is not None else rec.first_token_ns
        return None if first is None else first - rec.sent_ns

    def columns(self, c: SuccessColumns) -> np.ndarray:
        t = _ttft_vllm(c)
        ttft: np.ndarray = t[t != NONE]
        return ttft


@metric
class Ttfo(LatencyMetric):
    """Time to the first content (answer, not reasoning) event."""

    name = "ttfo"
    streamed_only = True

    def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
        return None if rec.first_content_ns is None else rec.first_content_ns - rec.sent_ns

    def columns(self, c: SuccessColumns) -> np.ndarray:
        return _since(c.first_content, c.sent)


@metric
class Tpot(LatencyMetric):
    """Time per output token over completion tokens (the record's own definition)."""

    name = "tpot"
    profiles = frozenset({"default"})
    streamed_only = True

    def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
        return rec.tpot_ns()

    def columns(self, c: SuccessColumns) -> np.ndarray:
        ok = (c.tokens != NONE) & (c.tokens > 1) & (c.first_token != NONE) & (c.last_token != NONE)
        span = (c.last_token[ok] - c.first_token[ok]).astype(np.float64)
        tpot: np.ndarray = span / (c.tokens[ok] - 1).astype(np.float64)  # as Python's int / int rounds
        return tpot


@metric
class E2e(LatencyMetric):
    name = "e2e_latency"

    def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
        return None if rec.end_ns is None else rec.end_ns - rec.sent_ns

    def columns(self, c: SuccessColumns) -> np.ndarray:
        return _since(c.end, c.sent)


@metric
class TpotVllm(LatencyMetric):
    """vLLM: (e2e - ttft) / (N - 1)."""

    name = "tpot"
    profiles = frozenset({"vllm"})
    needs = ("ttft", "e2e_latency")
    streamed_only = True

    def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
        ttft, e2e, n = vals["ttft"], vals["e2e_latency"], rec.completion_tokens
        if e2e is not None and ttft is not None and n is not None and n > 1:
            return (e2e - ttft) / (n - 1)
        return None

    def columns(self, c: SuccessColumns) -> np.ndarray:
        ttft = _ttft_vllm(c)
        ok = (ttft != NONE) & (c.end != NONE) & (c.tokens != NONE) & (c.tokens > 1)
        span = ((c.end[ok] - c.sent[ok]) - ttft[ok]).astype(np.float64)
        tpot: np.ndarray = span / (c.tokens[ok] - 1).astype(np.float64)
        return tpot


@metric
class ItlSpread(GapMetric):
    """Per-token ITL: each gap spread over the tokens of the later event (see :func:`itl_spread`)."""

    name = "itl"
    profiles = frozenset({"default"})
    columnar = True
    per_token = True

    def per_event(self, rec: RequestRecord, emit: Emit) -> None:
        itl_spread(rec, emit)

    def short(self, rec: RequestRecord, gaps: list[int], hist: Any) -> None:
        if token_weighted(rec):
            itl_spread(rec, hist.record)
        else:
            hist.record_all(gaps)  # one token per event: per-token ITL equals the raw gaps

    def vectorised(self, rec: RequestRecord, gaps: np.ndarray, raw_q: tuple[Any, ...], hist: Any) -> None:
        n = len(rec.event_ns)
        toks = rec.event_tokens
        ct = rec.completion_tokens
        if len(toks) == n:
            k = np.frombuffer(toks, dtype=np.dtype(f"i{toks.itemsize}"))[1:].astype(np.int64)
            hist.record_many(gaps / np.maximum(k, 1), np.maximum(k, 1))
        elif ct is not None and ct > n:
            per = ct / n
            hist.record_many(gaps / per, np.full(gaps.size, max(1, round(per)), dtype=np.int64))
        else:
            hist.add_quantised(*raw_q)  # one token per event: per-token ITL equals the raw gaps


@metric
class ItlVllm(GapMetric):
    """vLLM's "ITL": the raw per-chunk gaps."""

    name = "itl"
    profiles = frozenset({"vllm"})
    columnar = True

    def per_event(self, rec: RequestRecord, emit: Emit) -> None:
        icl_raw(rec, emit)


@metric
class Icl(GapMetric):
    """Inter-chunk latency: the raw gaps between token-bearing events."""

    name = "icl"
    columnar = True

    def per_event(self, rec: RequestRecord, emit: Emit) -> None:
        icl_raw(rec, emit)


@metric
class QueueTime(LatencyMetric):
    """From the scheduled send time to the actual send (client-side queueing)."""

    name = "queue_time"

    def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
        return rec.sent_ns - rec.scheduled_ns

    def columns(self, c: SuccessColumns) -> np.ndarray:
        queue: np.ndarray = (c.sent - c.scheduled).astype(np.float64)
        return queue


@metric
class FromSchedule(LatencyMetric):
    name = "latency_from_schedule"

    def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
        return None if rec.end_ns is None else rec.end_ns - rec.scheduled_ns

    def columns(self, c: SuccessColumns) -> np.ndarray:
        return _since(c.end, c.scheduled)


class CounterMetric:
    """Sums over a stage's successful requests (token sources, server quirks, server-reported numbers).

    A counter is fed every success (:meth:`add`: a few attribute reads when there is nothing to count), merges
    exactly across worker processes (:meth:`merge`, :meth:`to_state` / :meth:`from_state`), and writes one
    key of the stage summary (``name``: :meth:`summary`). Nothing is kept per request. Adding one (a new
    server number, a per-turn count) is one class with :func:`counter`; the aggregator and the summary pick it
    up without edits.
    """

    name: ClassVar[str]
    profiles: ClassVar[frozenset[str]] = ALL_PROFILES

    def add(self, rec: RequestRecord) -> None:
        raise NotImplementedError

    def merge(self, other: Any) -> None:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, d: dict[str, Any]) -> None:
        """Restore from :meth:`to_state` (missing keys stay zero: older states load)."""
        raise NotImplementedError

    def summary(self) -> Any:
        raise NotImplementedError


_COUNTERS: list[type[CounterMetric]] = []

_C = TypeVar("_C", bound=type[CounterMetric])


def counter(cls: _C) -> _C:
    """Class decorator: register a counter metric (its summary key is ``cls.name``)."""
    _COUNTERS.append(cls)
    return cls


def counter_plan(profile: str) -> list[CounterMetric]:
    """Fresh counter objects for ``profile`` (one set per stage aggregate)."""
    return [c() for c in _COUNTERS if profile in c.profiles]


class FieldCounter(CounterMetric):
    """A counter whose state is a fixed tuple of numeric attributes (``fields``), summed on merge."""

    fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        for f in self.fields:
            setattr(self, f, 0)

    def merge(self, other: Any) -> None:
        for f in self.fields:
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def to_state(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.fields}

    def load_state(self, d: dict[str, Any]) -> None:
        for f in self.fields:
            if f in d:
                setattr(self, f, d[f])


@counter
class TokenSources(CounterMetric):
    """Where each success's token counts came from (``usage``, ``events``, ``tokenizer``...)."""

    name = "token_sources"

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, rec: RequestRecord) -> None:
        src = rec.token_source or "unknown"
        self.counts[src] = self.counts.get(src, 0) + 1

    def merge(self, other: Any) -> None:
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v

    def to_state(self) -> dict[str, Any]:
        return dict(self.counts)

    def load_state(self, d: dict[str, Any]) -> None:
        self.counts = {str(k): int(v) for k, v in d.items()}

    def summary(self) -> dict[str, int]:
        return dict(self.counts)

    def dominant(self) -> str:
        """``usage`` when every success had server usage, else ``mixed`` (``none`` before any success)."""
        if not self.counts:
            return "none"
        if len(self.counts) == 1:
            return next(iter(self.counts))
        return "mixed"


@counter
class ServerQuirks(FieldCounter):
    """Successes with a server quirk: usage not believed, a whole body for a stream, SSE under another type."""

    name = "server_quirks"
    fields = ("usage_rejected", "not_streamed", "sse_mislabelled")
    usage_rejected: int
    not_streamed: int
    sse_mislabelled: int

    def add(self, rec: RequestRecord) -> None:
        if rec.usage_rejected is not None:
            self.usage_rejected += 1
        if rec.sse_content_type is not None:
            self.sse_mislabelled += 1
        if not rec.ttft_measured:
            self.not_streamed += 1

    def summary(self) -> dict[str, int]:
        return self.to_state()


_PRINT_ORDER = ("ttft", "ttfo", "tpot", "itl", "icl", "e2e_latency", "queue_time", "latency_from_schedule")


def metric_names() -> tuple[str, ...]:
    """Latency metrics of the summary, in print order (metrics registered later, e.g. by a plugin, last)."""
    return _PRINT_ORDER + tuple(dict.fromkeys(c.name for c in _REGISTRY if c.name not in _PRINT_ORDER))


#: The built-in latency metrics, in the order they are printed.
LATENCY_METRICS: tuple[str, ...] = metric_names()


def plan(profile: str) -> tuple[list[LatencyMetric], list[GapMetric]]:
    """The metric objects of ``profile``, per-request ones ordered so that every ``needs`` comes first."""
    scalar = [c() for c in _REGISTRY if issubclass(c, LatencyMetric) and profile in c.profiles]
    gaps = [c() for c in _REGISTRY if issubclass(c, GapMetric) and profile in c.profiles]
    ordered: list[LatencyMetric] = []
    done: set[str] = set()
    pending = scalar
    while pending:
        ready = [m for m in pending if all(n in done for n in m.needs)]
        if not ready:
            raise ValueError(f"metric inputs missing or circular: {[m.name for m in pending]}")
        ordered += ready
        done |= {m.name for m in ready}
        pending = [m for m in pending if m not in ready]
    return ordered, gaps


@dataclass(slots=True)
class Samples:
    """Per-request scalar metrics (ns; None when undefined for this request)."""

    ttft: float | None
    ttfo: float | None
    tpot: float | None
    e2e: float | None
    queue: float
    from_schedule: float | None


def _samples(profile: str, rec: RequestRecord) -> Samples:
    vals: dict[str, float | None] = {}
    for m in plan(profile)[0]:
        vals[m.name] = m.value(rec, vals)
    return Samples(
        vals["ttft"],
        vals["ttfo"],
        vals["tpot"],
        vals["e2e_latency"],
        vals["queue_time"] or 0.0,
        vals["latency_from_schedule"],
    )


def scalar_default(rec: RequestRecord) -> Samples:
    """METRICS.md definitions: TTFT at the first token-bearing event, TPOT over completion tokens."""
    return _samples("default", rec)


def scalar_vllm(rec: RequestRecord) -> Samples:
    """vLLM serving benchmark: TTFT at the first event with non-empty ``choices``; TPOT = (e2e-ttft)/(N-1)."""
    return _samples("vllm", rec)


def token_weighted(rec: RequestRecord) -> bool:
    """Whether per-token ITL weights this stream's gaps: the server said the tokens of every event (continuous
    usage stats), or more tokens than events; otherwise each event is one token and the ITL is the raw gaps."""
    n = len(rec.event_ns)
    ct = rec.completion_tokens
    return len(rec.event_tokens) == n or (ct is not None and ct > n)


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
