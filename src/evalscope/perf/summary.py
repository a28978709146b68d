"""Turn a stage's aggregator into the ``summary.json`` stage entry (schema in docs/perf.md).

May import: ``perf.aggregate``, ``perf.coverage``, ``perf.metrics``, ``perf.min_window`` (data in, dict out).
"""

from __future__ import annotations

from typing import Any

from evalscope.perf.aggregate import Aggregator
from evalscope.perf.coverage import add_to_summary as add_coverage
from evalscope.perf.min_window import apply_min_window

SCHEMA = "evalscope.perf.summary/1"


def stage_summary(
    agg: Aggregator,
    *,
    stage: int,
    parallel: int,
    concurrency_cap: int,
    rate: float | None,
    number: int | None,
    client: dict[str, Any],
    dispatch_start_ns: int | None = None,
    percentiles: tuple[float, ...] = (),
) -> dict[str, Any]:
    """One entry of ``summary["stages"]``; latency objects are in ms."""
    window_ns = agg.window_ns(dispatch_start_ns)
    window_s = window_ns / 1e9
    done = agg.succeeded + agg.failed

    def per_s(x: float) -> float | None:
        return x / window_s if window_s > 0 else None

    out: dict[str, Any] = {
        "stage": stage,
        "parallel": parallel,
        "concurrency_cap": concurrency_cap,
        "rate": rate,
        "number": number,
        "requests": {
            "sent": agg.sent,
            "succeeded": agg.succeeded,
            "failed": agg.failed,
            "cancelled": agg.cancelled,
            "error_rate": (agg.failed / done) if done else 0.0,
        },
        "duration_s": window_s,
        "throughput": {
            "requests_per_s": per_s(agg.succeeded),
            "output_tokens_per_s": per_s(agg.completion_tokens),
            "total_tokens_per_s": per_s(agg.completion_tokens + agg.prompt_tokens),
        },
        "tokens": {
            "prompt_total": agg.prompt_tokens,
            "completion_total": agg.completion_tokens,
            "prompt_mean": (agg.prompt_tokens / agg.succeeded) if agg.succeeded else None,
            "completion_mean": (agg.completion_tokens / agg.succeeded) if agg.succeeded else None,
        },
    }
    for name, m in agg.metrics.items():  # every metric class of the run (perf/metrics.py), in print order
        out[name] = m.stats(percentiles)
    if agg.slos_ns:
        out["goodput"] = {
            "slos_ms": {k: v / 1e6 for k, v in agg.slos_ns.items()},
            "good": agg.good,
            "requests_per_s": per_s(agg.good),
            "ratio": (agg.good / done) if done else None,
        }
    else:
        out["goodput"] = None
    for name, c in agg.counters.items():  # counter metrics: token_sources, server_quirks, server, ...
        out[name] = c.summary()
    add_coverage(out, agg, percentiles)
    out["token_source"] = agg.token_source()
    out["token_disagreement"] = agg.token_disagreement()
    out["errors"] = agg.error_table()
    # after every client check: a stage too short to judge gets no verdict (perf/min_window.py)
    out["client"] = apply_min_window(client, window_s, agg.loop_lag.count) if client else client
    out["timeline"] = [
        {"t": i, "completed": r[0], "failed": r[1], "output_tokens": r[2], "in_flight": r[3]}
        for i, r in enumerate(agg.timeline)
    ]
    return out
