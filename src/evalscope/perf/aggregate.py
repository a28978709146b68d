"""Streaming aggregation: one HDR histogram per metric, counters, a bounded error table, a per-second timeline.

Nothing here grows per request or per token (M1): each latency sample goes into an HDR histogram
(1 µs … 1 h, 3 significant digits, so percentiles are within 0.1 %), next to an exact count / sum / min / max.
Aggregators are mergeable (:meth:`Aggregator.merge`, :meth:`Aggregator.to_state` /
:meth:`Aggregator.from_state`), so worker processes can each aggregate and the parent merges exactly.

May import: ``engine.records``, ``perf.histogram``, ``perf.metrics``, ``perf.coverage``, ``perf.servernums``.
"""

from __future__ import annotations

import re
from array import array
from itertools import pairwise
from typing import Any

import numpy as np

from evalscope.engine.records import RequestRecord
from evalscope.perf.coverage import Coverage
from evalscope.perf.histogram import Metric, quantise, record_arrays
from evalscope.perf.metrics import (
    NONE,
    WINDOW_FROM_DISPATCH,
    CounterMetric,
    LatencyMetric,
    ServerQuirks,
    SuccessColumns,
    TokenSources,
    counter_plan,
    metric_names,
    plan,
    token_weighted,
)
from evalscope.perf.servernums import ServerNumbers

MAX_ERROR_GROUPS = 100
#: Seconds the per-second timeline covers (7 days, at most ~60 MB of rows). A later second (the tail of a longer
#: soak, or a record read back from a file with a forged end time) is counted in the last one, so that no record
#: can make the timeline grow without bound (an end time of 10**18 ns asked for 10**9 rows).
MAX_TIMELINE_S = 7 * 86_400
#: Streams with at least this many events have their gaps recorded with numpy (cheaper than per-gap calls).
_VECTOR_MIN_EVENTS = 16
#: Streamed successes (and events) held in the columns before numpy folds them into the histograms: the per-record
#: work drops to one row append (benchmarks/bench_aggregate.py: 2.4 against 5.9 µs per success with the folds,
#: warm). A fold is a pause of the event loop, so it is kept short: its arrays stay under 128 KiB, glibc's
#: threshold for giving an allocation its own mmap. Above it every numpy temporary is mapped and unmapped, page
#: faults included, ten times the arithmetic here (the longest add: 2.07 ms with folds of 2,048 rows and 32,768
#: events, 0.54 ms now).
_FOLD_ROWS = 1024
_FOLD_EVENTS = 8192
_WIDTH = len(SuccessColumns.FIELDS)


def _values(d: LatencyMetric, table: np.ndarray) -> np.ndarray:
    """Metric ``d`` of the held rows in ``table`` (int64, :data:`_WIDTH` per success)."""
    values = d.columns(SuccessColumns(table))
    assert values is not None  # _columnar holds only when every metric has columns
    return values


_NORM = (
    re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"),
    re.compile(r"\[[0-9a-fA-F:]+\](?::\d+)?"),
    re.compile(r"\b(?=[0-9a-zA-Z_-]*\d)[0-9a-zA-Z_-]{12,}\b"),
    re.compile(r"0x[0-9a-fA-F]+"),
    re.compile(r"\d+(?:\.\d+)?"),
)


def normalize_error(message: str) -> str:
    """Strip what varies between occurrences (ids, addresses, numbers) so equal errors group together."""
    text = message[:300]
    for rx in _NORM:
        text = rx.sub("#", text)
    return " ".join(text.split())[:160]


class Aggregator:
    """All statistics of one stage, fed one :class:`RequestRecord` at a time.

    Args:
        t0_ns: start of the stage (timeline seconds count from here).
        profile: ``default`` or ``vllm`` metric definitions.
        slos_ms: goodput SLOs (``ttft``, ``ttfo``, ``tpot``, ``itl``, ``e2e``), in ms.
    """

    def __init__(self, t0_ns: int, profile: str = "default", slos_ms: dict[str, float] | None = None) -> None:
        self.t0_ns = t0_ns
        self.profile = profile
        self.slos_ns = {k: float(v) * 1e6 for k, v in (slos_ms or {}).items()}
        # streamed successes not folded yet (SuccessColumns.FIELDS per record) and the events of their gaps
        self._rows: array[int] = array("q")
        self._events: array[int] = array("q")
        self._starts: array[int] = array("q")  # where each held record's events begin in _events
        self._col_done: dict[str, int] = {}  # held rows already in that metric (a live read: percentile_ms)
        self.metrics = {name: Metric() for name in metric_names()}
        self.loop_lag = Metric()
        self.dispatch_lag = Metric()
        self.sent = 0
        self.succeeded = 0
        self.failed = 0
        self.cancelled = 0
        self.good = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        # counter metrics (perf/metrics.py, perf/servernums.py): token sources, server quirks, server numbers
        self.counters: dict[str, CounterMetric] = {c.name: c for c in counter_plan(profile)}
        # server usage vs client tokenizer, over successes whose text was kept (--save-responses)
        self.check_requests = 0
        self.check_usage_tokens = 0
        self.check_tokenizer_tokens = 0
        self.first_sent_ns: int | None = None
        self.last_end_ns: int | None = None
        self.errors: dict[str, dict[str, Any]] = {}
        self.errors_other = 0
        self.timeline: list[list[int]] = []  # per second: completed, failed, output tokens, in flight
        self._plan = plan(profile)  # the metric classes of this profile (perf/metrics.py)
        self._bind()
        self.coverage = Coverage()  # incomplete at the deadline, undefined SLO criteria (perf/coverage.py)

    def _bind(self) -> None:
        """Pair each metric class of the plan with its histogram (again after :meth:`from_state`)."""
        scalar, gaps = self._plan
        metrics = self._metrics
        self._scalar_plan = [(d.value, d.name, d.streamed_only, metrics[d.name].record) for d in scalar]
        self._gap_plan = [(d, metrics[d.name]) for d in gaps]
        self._vals: dict[str, float | None] = dict.fromkeys(metrics)  # reused for every record
        self._counter_adds = [c.add for c in self.counters.values()]
        # Streamed successes go to the columns when every metric has a vectorised form and no per-request
        # verdict (goodput) is needed; otherwise each is computed per record.
        self._col_plan = [(d, metrics[d.name]) for d in scalar]
        self._col_gaps = [metrics[d.name] for d in gaps]
        self._gap_names = frozenset(d.name for d in gaps)
        self._columnar = (
            not self.slos_ns
            and all(type(d).columns is not LatencyMetric.columns for d in scalar)
            and all(d.columnar for d in gaps)
        )
        self._per_token = any(d.per_token for d in gaps)

    def percentile_ms(self, name: str, p: float) -> float | None:
        """Metric ``name``'s ``p`` percentile (ms) for the live progress, folding only that metric's share of the
        held successes: reading :attr:`metrics` folds every metric and the gaps, a pause of the event loop about
        twice as long (0.6 against 0.3 ms for two medians), and the progress reads two medians four times a
        second."""
        if name in self._gap_names:
            self._fold_events()
        else:
            held = len(self._rows) // _WIDTH
            k = self._col_done.get(name, 0)
            if held > k:
                for d, hist in self._col_plan:
                    if d.name == name:
                        # from a copy of the rows: no numpy view may keep the held rows from growing
                        # (array.extend raises BufferError while their buffer is exported)
                        table = np.frombuffer(self._rows[k * _WIDTH :], dtype=np.int64)
                        hist.record_array(_values(d, table))
                        self._col_done[name] = held
                        break
                else:
                    return self.metrics[name].percentile_ms(p)  # not this profile's: every metric folded
        return self._metrics[name].percentile_ms(p)

    @property
    def metrics(self) -> dict[str, Metric]:
        """Each latency metric's distribution, with every success added so far folded in."""
        if self._rows or self._events:
            self._fold()
        return self._metrics

    @metrics.setter
    def metrics(self, value: dict[str, Metric]) -> None:
        self._metrics = value

    @property
    def server(self) -> ServerNumbers:
        """Cached / reasoning tokens, llama.cpp timings, tokens per event (the ``server`` counter)."""
        s = self.counters["server"]
        assert isinstance(s, ServerNumbers)
        return s

    @property
    def token_sources(self) -> dict[str, int]:
        return self._token_sources().counts

    def _token_sources(self) -> TokenSources:
        t = self.counters["token_sources"]
        assert isinstance(t, TokenSources)
        return t

    @property
    def usage_rejected(self) -> int:
        """Successes whose server usage was not believed (engine/usage.py)."""
        q = self.counters["server_quirks"]
        assert isinstance(q, ServerQuirks)
        return q.usage_rejected

    # ---- feeding ---------------------------------------------------------------------------------------

    def _second(self, t_ns: int) -> list[int]:
        s = min(max(0, (t_ns - self.t0_ns) // 1_000_000_000), MAX_TIMELINE_S - 1)
        tl = self.timeline
        while len(tl) <= s:
            tl.append([0, 0, 0, 0])
        return tl[s]

    def add(self, rec: RequestRecord) -> None:
        """Fold one finished record in. Latency statistics use successful requests only (E5)."""
        self.sent += 1
        status = rec.status
        if status == "cancelled":
            # E10: cut off by an interrupt or the end of a duration; neither an error nor a latency sample.
            self.cancelled += 1
            return
        end = rec.end_ns if rec.end_ns is not None else rec.sent_ns
        if self.first_sent_ns is None or rec.sent_ns < self.first_sent_ns:
            self.first_sent_ns = rec.sent_ns
        if self.last_end_ns is None or end > self.last_end_ns:
            self.last_end_ns = end
        bucket = self._second(end)
        if status != "ok":
            self.failed += 1
            bucket[1] += 1
            self._add_error(rec)
            return
        self.succeeded += 1
        bucket[0] += 1
        ct = rec.completion_tokens or 0
        bucket[2] += ct
        self.completion_tokens += ct
        self.prompt_tokens += rec.prompt_tokens or 0
        for add in self._counter_adds:
            add(rec)
        streamed = rec.ttft_measured
        if streamed and self._columnar and self._add_row(rec):
            return
        vals = self._vals
        for value, name, streamed_only, record in self._scalar_plan:
            # a whole body (no stream) has no TTFT / TTFO / TPOT to record
            v = value(rec, vals) if streamed or not streamed_only else None
            vals[name] = v
            if v is not None:
                record(v)
        slos = self.slos_ns
        if slos:
            itl_m = self._metrics["itl"]
            itl_before_n, itl_before_sum = itl_m.totals()
        if streamed:  # a whole body has no per-token timing
            self._gaps_now(rec)
        if slos:
            itl_mean = None
            itl_n, itl_sum = itl_m.totals()
            if itl_n > itl_before_n:
                itl_mean = (itl_sum - itl_before_sum) / (itl_n - itl_before_n)
            values = {
                "ttft": vals["ttft"],
                "ttfo": vals["ttfo"],
                "tpot": vals["tpot"],
                "e2e": vals["e2e_latency"],
                "itl": itl_mean,
            }
            # A metric undefined for this request (e.g. TPOT with one token) is not met (docs/metrics.md).
            if self.coverage.slo_good(values, self.slos_ns):
                self.good += 1

    def quirks(self) -> dict[str, int]:
        """How many successes had each server quirk (the summary's ``server_quirks``)."""
        result: dict[str, int] = self.counters["server_quirks"].summary()
        return result

    def _add_row(self, rec: RequestRecord) -> bool:
        """Hold a streamed success in the columns (its gaps too, unless token-weighted: those are recorded now).
        False, with nothing changed, when a field is not an integer (a record read back from an edited file):
        the caller then computes it per record, as the metric classes define it."""
        ev = rec.event_ns
        n = len(ev)
        weighted = n >= 2 and self._per_token and token_weighted(rec)
        held = n >= 2 and not weighted
        t = rec.first_token_ns
        c = rec.first_content_ns
        ch = rec.first_choice_ns
        last = rec.last_token_ns
        done = rec.end_ns
        tokens = rec.completion_tokens
        rows = self._rows
        events = self._events
        mark, mark_ev = len(rows), len(events)
        try:
            rows.extend(
                (
                    rec.sent_ns,
                    rec.scheduled_ns,
                    NONE if t is None else t,
                    NONE if c is None else c,
                    NONE if ch is None else ch,
                    NONE if last is None else last,
                    NONE if done is None else done,
                    NONE if tokens is None else tokens,
                )
            )
            if held:
                events.extend(ev)
        except (TypeError, OverflowError):
            del rows[mark:]  # array.extend appends up to the item that failed
            del events[mark_ev:]
            return False
        if held:
            self._starts.append(mark_ev)
            if len(events) >= _FOLD_EVENTS:
                self._fold_events()
        elif weighted:
            self._gaps_now(rec)
        if len(rows) >= _FOLD_ROWS * _WIDTH:
            self._fold_rows()
        return True

    def _gaps_now(self, rec: RequestRecord) -> None:
        """One streamed record's gap metrics, recorded now."""
        ev = rec.event_ns
        if len(ev) >= _VECTOR_MIN_EVENTS:
            self._gaps_vectorised(rec)
        elif len(ev) >= 2:
            gaps = [b - a for a, b in pairwise(ev)]
            for g, hist in self._gap_plan:
                g.short(rec, gaps, hist)

    def _fold(self) -> None:
        """Fold everything held into the histograms."""
        self._fold_rows()
        self._fold_events()

    def _fold_rows(self) -> None:
        """Each scalar metric's vectorised form over the held successes (less what a live read folded)."""
        rows, self._rows = self._rows, array("q")
        done, self._col_done = self._col_done, {}
        if not rows:
            return
        table = np.frombuffer(rows, dtype=np.int64)  # no copy: these rows are no longer appended to
        for d, hist in self._col_plan:
            hist.record_array(_values(d, table[done.get(d.name, 0) * _WIDTH :]))

    def _fold_events(self) -> None:
        """The gap metrics of the held events (each record's are consecutive; the gaps across records are
        dropped). Apart from the rows: a long stream fills the events long before the rows."""
        events, self._events = self._events, array("q")
        starts, self._starts = self._starts, array("q")
        if not events:
            return
        gaps = np.diff(np.frombuffer(events, dtype=np.int64))
        keep = np.ones(gaps.size, dtype=bool)
        # not the gap from one record's last event to the next one's first
        keep[np.frombuffer(starts, dtype=np.int64)[1:] - 1] = False
        record_arrays(self._col_gaps, gaps[keep])

    def _gaps_vectorised(self, rec: RequestRecord) -> None:
        """The gap metrics of a long stream with numpy (same definitions as their per-event form)."""
        ev = np.frombuffer(rec.event_ns, dtype=np.int64)
        gaps = np.diff(ev).astype(np.float64)
        raw_q = quantise(gaps)
        for g, hist in self._gap_plan:
            g.vectorised(rec, gaps, raw_q, hist)

    def _add_error(self, rec: RequestRecord) -> None:
        err = rec.error
        kind = err.kind if err is not None else "unknown"
        status = err.http_status if err is not None else rec.http_status
        msg = err.message if err is not None else ""
        key = f"{kind}|{status if status is not None else '-'}|{normalize_error(msg)}"
        group = self.errors.get(key)
        if group is None:
            if len(self.errors) >= MAX_ERROR_GROUPS:
                self.errors_other += 1
                return
            group = {
                "kind": kind,
                "http_status": status,
                "key": key,
                "count": 0,
                "example": msg[:1024],
                "exception_type": err.exception_type if err is not None else None,
            }
            self.errors[key] = group
        group["count"] += 1

    def add_token_check(self, usage_tokens: int, tokenizer_tokens: int) -> None:
        """Record one request's completion tokens by server usage and by the client's tokenizer."""
        self.check_requests += 1
        self.check_usage_tokens += usage_tokens
        self.check_tokenizer_tokens += tokenizer_tokens

    def token_disagreement(self) -> dict[str, Any] | None:
        """Server usage vs client tokenizer over the checked requests (None when nothing was checked)."""
        if not self.check_requests and not self.usage_rejected:
            return None
        u, t = self.check_usage_tokens, self.check_tokenizer_tokens
        return {
            "requests": self.check_requests,
            "usage_tokens": u,
            "tokenizer_tokens": t,
            "relative_difference": ((t - u) / u) if u else None,
            # successes whose server usage was not believed (engine/usage.py): counted tokens were used
            "usage_rejected": self.usage_rejected,
        }

    def sample_in_flight(self, now_ns: int, in_flight: int) -> None:
        """Record the number of in-flight requests for the current second (the last sample wins)."""
        self._second(now_ns)[3] = in_flight

    # ---- merging ----------------------------------------------------------------------------------------

    def merge(self, other: Aggregator) -> None:
        """Add ``other`` (e.g. a worker's stage aggregate) into this one."""
        for name, m in other.metrics.items():
            self.metrics[name].merge(m)
        self.loop_lag.merge(other.loop_lag)
        self.dispatch_lag.merge(other.dispatch_lag)
        for attr in (
            "sent",
            "succeeded",
            "failed",
            "cancelled",
            "good",
            "prompt_tokens",
            "completion_tokens",
        ):
            setattr(self, attr, getattr(self, attr) + getattr(other, attr))
        for name, c in self.counters.items():
            c.merge(other.counters[name])
        if other.first_sent_ns is not None:
            self.first_sent_ns = (
                other.first_sent_ns
                if self.first_sent_ns is None
                else min(self.first_sent_ns, other.first_sent_ns)
            )
        if other.last_end_ns is not None:
            self.last_end_ns = (
                other.last_end_ns if self.last_end_ns is None else max(self.last_end_ns, other.last_end_ns)
            )
        for key, g in other.errors.items():
            mine = self.errors.get(key)
            if mine is not None:
                mine["count"] += g["count"]
            elif len(self.errors) < MAX_ERROR_GROUPS:
                self.errors[key] = dict(g)
            else:
                self.errors_other += g["count"]
        self.errors_other += other.errors_other
        self.coverage.merge(other.coverage)
        offset = (other.t0_ns - self.t0_ns) // 1_000_000_000
        for i, row in enumerate(other.timeline):
            mine_row = self._second(self.t0_ns + (i + offset) * 1_000_000_000)
            for j in range(4):
                mine_row[j] += row[j]

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready, lossless snapshot (histograms base64-encoded) for :meth:`from_state`."""
        return {
            "t0_ns": self.t0_ns,
            "profile": self.profile,
            "slos_ms": {k: v / 1e6 for k, v in self.slos_ns.items()},
            "metrics": {k: m.to_state() for k, m in self.metrics.items()},
            "loop_lag": self.loop_lag.to_state(),
            "dispatch_lag": self.dispatch_lag.to_state(),
            "counters": {
                a: getattr(self, a)
                for a in (
                    "sent",
                    "succeeded",
                    "failed",
                    "cancelled",
                    "good",
                    "prompt_tokens",
                    "completion_tokens",
                    "first_sent_ns",
                    "last_end_ns",
                    "errors_other",
                    "check_requests",
                    "check_usage_tokens",
                    "check_tokenizer_tokens",
                )
            },
            "counter_metrics": {name: c.to_state() for name, c in self.counters.items()},
            "errors": [dict(g) for g in self.errors.values()],
            "timeline": [list(r) for r in self.timeline],
            "coverage": self.coverage.to_state(),
        }

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Aggregator:
        agg = cls(int(d["t0_ns"]), d.get("profile", "default"), d.get("slos_ms") or {})
        agg.metrics = {k: Metric.from_state(v) for k, v in d["metrics"].items()}
        agg._bind()
        agg.loop_lag = Metric.from_state(d["loop_lag"])
        agg.dispatch_lag = Metric.from_state(d["dispatch_lag"])
        legacy_quirks = {}
        for k, v in d["counters"].items():
            if k in ServerQuirks.fields:  # states written before the counters were classes
                legacy_quirks[k] = v
            else:
                setattr(agg, k, v)
        saved = dict(d.get("counter_metrics") or {})
        saved.setdefault("server_quirks", legacy_quirks)
        saved.setdefault("token_sources", d.get("token_sources") or {})
        saved.setdefault("server", d.get("server") or {})
        for name, c in agg.counters.items():
            c.load_state(saved.get(name) or {})
        agg.errors = {g["key"]: dict(g) for g in d.get("errors") or []}
        agg.timeline = [list(r) for r in d.get("timeline") or []]
        agg.coverage = Coverage.from_state(d.get("coverage"))
        return agg

    # ---- reading ----------------------------------------------------------------------------------------

    def window_ns(self, dispatch_start_ns: int | None = None) -> int:
        """Measurement window: first sent to last end (vllm profile: start of dispatch to last end)."""
        if self.last_end_ns is None or self.first_sent_ns is None:
            return 0
        start = self.first_sent_ns
        if self.profile in WINDOW_FROM_DISPATCH and dispatch_start_ns is not None:
            start = min(start, dispatch_start_ns)
        return max(0, self.last_end_ns - start)

    def token_source(self) -> str:
        """``usage`` when every success had server usage, else the dominant source (``events`` = counted)."""
        return self._token_sources().dominant()

    def error_table(self) -> list[dict[str, Any]]:
        rows = sorted(self.errors.values(), key=lambda g: -int(g["count"]))
        out = [
            {k: g[k] for k in ("kind", "http_status", "count", "example", "exception_type", "key")}
            for g in rows
        ]
        if self.errors_other:
            out.append(
                {
                    "kind": "other",
                    "http_status": None,
                    "count": self.errors_other,
                    "example": f"more than {MAX_ERROR_GROUPS} distinct errors",
                    "exception_type": None,
                    "key": "other",
                }
            )
        return out
