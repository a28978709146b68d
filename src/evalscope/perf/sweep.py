"""``--sweep N``: one stream, then max throughput, then N open-loop rates spaced evenly between the two.

The synchronous stage (closed loop, 1 stream) gives the rate a single user gets, ``r_sync``; the throughput
stage (closed loop, ``--sweep-parallel`` streams) the plateau, ``r_max``. Then rates
``r_sync + (r_max - r_sync) * i / (N + 1)``, i = 1..N, run in open loop (Poisson arrivals, or constant with
``--constant-rate``). An open-loop stage that over-saturates is cut short (perf/probe.py).

Reported in ``summary.json`` under ``sweep``:

- ``plateau_rps``: the throughput stage's completed requests per second;
- ``max_sustainable_rate``: the largest offered rate that was served (completed requests/s >= 95 % of the
  rate, or of the rate the random arrivals actually scheduled when lower) without over-saturating;
- ``knee_rate``: the largest offered rate whose mean end-to-end latency stays within 20 % of the synchronous
  one; above it latency starts to climb (queueing).

May import: ``perf.sla`` (metric values); ``perf.probe`` is the caller.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from evalscope.perf.sla import metric_value

#: A rate is sustained when this share of it was completed per second.
SUSTAINED = 0.95
#: The knee: mean E2E latency more than this factor above the synchronous stage's.
KNEE_FACTOR = 1.2

Req = tuple[int, float | None, int | None, float | None]


def _point(kind: str, rate: float | None, done: dict[str, Any]) -> dict[str, Any]:
    s = done["summary"]
    return {
        "kind": kind,
        "stage": done["stage"],
        "rate": rate,
        "parallel": s.get("parallel"),
        "rps": metric_value(s, "rps"),
        "tps": metric_value(s, "tps"),
        "p50_ttft": metric_value(s, "p50_ttft"),
        "p99_ttft": metric_value(s, "p99_ttft"),
        "mean_e2e_latency": metric_value(s, "mean_e2e_latency"),
        "error_rate": metric_value(s, "error_rate"),
        "saturated": bool(s.get("stopped_early")),
        # the offered rate as actually scheduled (random arrivals over a finite stage differ from the target)
        "scheduled_rate": (s.get("client") or {}).get("scheduled_rate"),
    }


def sweep(cfg: Any, blocks: dict[str, Any]) -> Generator[Req, dict[str, Any], None]:
    n_rates = int(cfg.sweep)
    number = cfg.stages()[0][1]
    block: dict[str, Any] = {"rates": n_rates, "points": [], "status": "running"}
    blocks["sweep"] = block
    sync = _point("synchronous", None, (yield (1, None, number, None)))
    block["points"].append(sync)
    top = _point("throughput", None, (yield (cfg.sweep_parallel, None, number, None)))
    block["points"].append(top)
    r_sync, r_max = sync["rps"] or 0.0, top["rps"] or 0.0
    block["synchronous_rps"] = r_sync
    block["plateau_rps"] = r_max
    if r_max <= r_sync or r_sync <= 0:
        block["status"] = "completed"
        block["note"] = "max throughput is not above the synchronous rate: no rates between them"
        _conclude(block)
        return
    rates = [r_sync + (r_max - r_sync) * i / (n_rates + 1) for i in range(1, n_rates + 1)]
    for rate in rates:
        n = number if number is not None else None
        limit = cfg.duration if cfg.duration is not None else (1.5 * n / rate + 10.0 if n else None)
        done = yield (cfg.parallel[0], rate, n, limit)
        block["points"].append(_point("rate", rate, done))
    block["status"] = "completed"
    _conclude(block)


def _conclude(block: dict[str, Any]) -> None:
    pts = block["points"]
    sync = pts[0]
    base = sync.get("mean_e2e_latency")
    open_loop = [p for p in pts if p["kind"] == "rate"]
    sustained = [
        p["rate"]
        for p in open_loop
        if not p["saturated"]
        and p["rps"] is not None
        and p["rps"] >= SUSTAINED * min(p["rate"], p.get("scheduled_rate") or p["rate"])
    ]
    block["max_sustainable_rate"] = max(sustained) if sustained else None
    knee = sync.get("rps")
    if base:
        for p in open_loop:
            lat = p.get("mean_e2e_latency")
            if p["saturated"] or lat is None or lat > KNEE_FACTOR * base:
                break
            knee = p["rate"]
    block["knee_rate"] = knee
