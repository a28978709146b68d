"""Capacity planning against a known truth (issue 15): the sweep's plateau and the SLA searches' answers.

The simulator runs at most 4 sequences at once (``--max-batch 4``), 100 ms to the first token, 10 ms per
token, 20 output tokens: each request holds a slot S = 0.1 + 19 * 0.01 = 0.29 s, so the capacity is
4 / 0.29 = 13.79 requests/s (docs/capacity.md).

1. ``--sweep N``: the throughput plateau (closed loop, 32 streams) must be within 3 % of 13.79.
2. ``--sla-auto-tune --sla-variable rate`` with ``p99_ttft <= 300``: the answer, rerun alone three times, meets
   the SLO each time; 10 % above it fails at least twice.
3. The same for ``--sla-variable parallel`` (10 % above, rounded up to the next integer).

Run:  PYTHONPATH=src python benchmarks/bench_capacity.py [--quick] [--out results.json]
(``--quick``: fewer requests per stage; the figures are then noisier.) Takes ~10-20 minutes in full.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from typing import Any

from evalscope.perf.runner import run_perf
from evalscope.sim import SimConfig, SimProcess
from evalscope.sim.capacity import capacity_rps

SIM = {"max_batch": 4, "ttft_ms": 100.0, "itl_ms": 10.0, "output_tokens": 20}
SLA = '[{"p99_ttft": "<=300"}]'


def _common(url: str, out: str) -> dict[str, Any]:
    return {"url": url, "max_tokens": 20, "outputs_dir": out, "live": False, "sleep_interval": 0.5}


def _rerun(url: str, out: str, variable: str, value: float, number: int, seed: int) -> dict[str, Any]:
    """One ordinary run at ``value`` (no search), like a user checking the answer."""
    kw: dict[str, Any] = {"number": number, "seed": seed, "warmup": 0}
    if variable == "rate":
        kw["rate"] = value
    else:
        kw["parallel"] = [int(value)]
    s = run_perf(**_common(url, out), **kw)
    st = s["stages"][0]
    return {"value": value, "p99_ttft": st["ttft"]["p99"], "met": st["ttft"]["p99"] <= 300.0, "seed": seed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests per stage (noisier)")
    ap.add_argument("--sweep-rates", type=int, default=4)
    ap.add_argument("--sla-repeats", type=int, default=2)
    ap.add_argument("--only", choices=["sweep", "rate", "parallel"], default=None)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    cap = capacity_rps(SimConfig(**SIM), 20)
    assert cap is not None
    number = 100 if args.quick else 200
    figures: dict[str, Any] = {"capacity_rps": cap, "sim": SIM}
    t_all = time.monotonic()
    with SimProcess(SimConfig(**SIM)) as sim, tempfile.TemporaryDirectory() as out:
        if args.only in (None, "sweep"):
            t = time.monotonic()
            s = run_perf(sweep=args.sweep_rates, number=number, sweep_parallel=32, **_common(sim.url, out))
            sw = s["sweep"]
            figures["sweep"] = {
                "plateau_rps": sw["plateau_rps"],
                "plateau_error_pct": 100 * (sw["plateau_rps"] - cap) / cap,
                "synchronous_rps": sw["synchronous_rps"],
                "knee_rate": sw["knee_rate"],
                "max_sustainable_rate": sw["max_sustainable_rate"],
                "points": [
                    {k: p[k] for k in ("kind", "rate", "rps", "p50_ttft", "p99_ttft", "saturated")}
                    for p in sw["points"]
                ],
                "seconds": time.monotonic() - t,
            }
            print(json.dumps(figures["sweep"], indent=1), flush=True)
        for variable in ("rate", "parallel"):
            if args.only not in (None, variable):
                continue
            t = time.monotonic()
            s = run_perf(
                sla_auto_tune=True,
                sla_variable=variable,
                sla_params=SLA,
                sla_repeats=args.sla_repeats,
                sla_min_requests=number,
                **_common(sim.url, out),
            )
            sla = s["sla"]
            ans = sla["largest_met"]
            block: dict[str, Any] = {
                "answer": ans,
                "smallest_failed": sla["smallest_failed"],
                "probes": [
                    {"value": p["value"], "met": p["met"], "p99_ttft": p["metrics"]["p99_ttft"]}
                    for p in sla["probes"]
                ],
                "search_seconds": time.monotonic() - t,
            }
            if ans is not None:
                above = ans * 1.1 if variable == "rate" else math.ceil(ans * 1.1)
                if variable == "parallel" and above == ans:
                    above = ans + 1
                n = number + (math.ceil(ans) if variable == "rate" else int(ans))
                block["reruns_at_answer"] = [
                    _rerun(sim.url, out, variable, ans, n, 100 + i) for i in range(3)
                ]
                block["reruns_10pct_above"] = [
                    _rerun(sim.url, out, variable, above, n, 200 + i) for i in range(3)
                ]
                block["answer_met_every_time"] = all(r["met"] for r in block["reruns_at_answer"])
                block["above_failed_at_least_twice"] = (
                    sum(not r["met"] for r in block["reruns_10pct_above"]) >= 2
                )
            figures[f"sla_{variable}"] = block
            print(json.dumps(block, indent=1), flush=True)
    figures["total_seconds"] = time.monotonic() - t_all
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=1)
    print(f"capacity 4/0.29 s = {cap:.2f} req/s")
    if "sweep" in figures:
        sw = figures["sweep"]
        print(
            f"sweep plateau {sw['plateau_rps']:.2f} req/s ({sw['plateau_error_pct']:+.1f} %), knee "
            f"{sw['knee_rate']}, max sustainable {sw['max_sustainable_rate']}"
        )
    for v in ("rate", "parallel"):
        b = figures.get(f"sla_{v}")
        if b and b["answer"] is not None:
            print(
                f"sla {v}: answer {b['answer']:.4g}; reruns met {sum(r['met'] for r in b['reruns_at_answer'])}/3;"
                f" 10% above failed {sum(not r['met'] for r in b['reruns_10pct_above'])}/3"
            )


if __name__ == "__main__":
    main()
