"""1 vs N client worker processes on a zero-latency heavy load: events/s, client CPU per event, added TTFT.

The simulator (zero latency, 256 tokens per request, one token per event) runs in its own process pinned to
CPU 0; the client (coordinator and workers) is pinned to the other CPUs when the machine has more than one.
For each worker count the same seeded load runs against a fresh simulator; the records are joined with the
simulator's truth by request id.

- events/s: token-bearing stream events received per second of the measurement window;
- worker CPU µs/event: CPU time of the client event loops during the stage (the in-process client, or the
  sum over workers) per event; ``+coord`` adds the coordinator's CPU (records, merging) during the stage;
- added TTFT: the client's TTFT minus the simulator's own (first token sent - request arrival), p50 / p99;
  it includes the time the request waits before the simulator's handler starts (a saturated simulator's
  accept backlog), so ``recv`` also shows the client's own part: first token received by the client minus
  first token handed to the transport by the simulator (one monotonic clock on one machine).

On a 2-core machine every worker shares one client core, so extra workers cannot add throughput there; the
figure that matters is that N workers do not cost more per event and report the same latencies. Run:
``python benchmarks/bench_workers.py [--workers 1,2,4] [--requests 2000] [--parallel 64]``. The last line is
JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from evalscope.perf.runner import run_perf
from evalscope.sim import SimConfig, SimProcess


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def one(workers: int, args: argparse.Namespace, out: str, sim_cpus: set[int] | None) -> dict[str, Any]:
    cfg = SimConfig(ttft_ms=0, itl_ms=0, output_tokens=args.tokens, truth_max=args.requests + 1000)
    with SimProcess(cfg, cpus=sim_cpus) as sim:
        summary = run_perf(
            url=sim.url,
            parallel=args.parallel,
            number=args.requests,
            max_tokens=args.tokens,
            warmup=args.parallel,
            outputs_dir=out,
            live=False,
            seed=1,
            workers=workers,
        )
        truth = {t["request_id"]: t for t in sim.fetch_truth() if t["request_id"].isdigit()}
    st = summary["stages"][0]
    cl = st["client"]
    recs = [json.loads(x) for x in (Path(summary["run_dir"]) / "records.jsonl").read_text().splitlines() if x]
    added: list[float] = []
    recv: list[float] = []
    for r in recs:
        t = truth.get(str(r["id"]))
        if t is None or r["status"] != "ok" or r.get("warmup") or t.get("first_token_ns") is None:
            continue
        added.append((r["first_token_ns"] - r["sent_ns"] - (t["first_token_ns"] - t["arrival_ns"])) / 1e6)
        recv.append((r["first_token_ns"] - t["first_token_ns"]) / 1e6)
    events = st["tokens"]["completion_total"]
    window = st["duration_s"]
    coord_s = (cl.get("coordinator_cpu_percent") or 0.0) / 100 * window
    return {
        "workers": workers,
        "requests": st["requests"]["succeeded"],
        "events": events,
        "events_per_s": round(events / window) if window else None,
        "worker_cpu_us_per_event": round(1e6 * cl["cpu_seconds"] / events, 2) if events else None,
        "with_coordinator_cpu_us_per_event": round(1e6 * (cl["cpu_seconds"] + coord_s) / events, 2)
        if events
        else None,
        "worker_cpu_percent": cl.get("worker_cpu_percent", [cl["cpu_percent"]]),
        "added_ttft_ms_p50": round(statistics.median(added), 3) if added else None,
        "added_ttft_ms_p99": round(pct(added, 99), 3) if added else None,
        "recv_delay_ms_p50": round(statistics.median(recv), 3) if recv else None,
        "recv_delay_ms_p99": round(pct(recv, 99), 3) if recv else None,
        "ttft_p50_ms": st["ttft"]["p50"],
        "e2e_p50_ms": st["e2e_latency"]["p50"],
        "loop_lag_p99_ms": cl["loop_lag_ms"]["p99"],
        "trustworthy": cl["trustworthy"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--parallel", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=256)
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    sim_cpus = {cpus[0]} if len(cpus) > 1 else None
    if sim_cpus:
        os.sched_setaffinity(0, set(cpus[1:]))  # the coordinator and (inherited) its workers
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as out:
        for w in (int(x) for x in args.workers.split(",")):
            rows.append(one(w, args, out, sim_cpus))
    print(
        f"{len(cpus)} CPUs; simulator on {sorted(sim_cpus) if sim_cpus else 'any'}, client on "
        f"{cpus[1:] if sim_cpus else 'any'}; {args.requests} requests x {args.tokens} tokens, "
        f"{args.parallel} parallel, zero latency"
    )
    print(
        f"{'workers':>7} {'events/s':>9} {'µs/ev':>7} {'+coord':>7} {'TTFT+ p50':>10} {'TTFT+ p99':>10} "
        f"{'recv p50':>9} {'recv p99':>9} {'E2E p50':>8} {'lag p99':>8} {'trust':>6}"
    )
    for r in rows:
        print(
            f"{r['workers']:>7} {r['events_per_s']:>9} {r['worker_cpu_us_per_event']:>7} "
            f"{r['with_coordinator_cpu_us_per_event']:>7} {r['added_ttft_ms_p50']:>10} "
            f"{r['added_ttft_ms_p99']:>10} {r['recv_delay_ms_p50']:>9} {r['recv_delay_ms_p99']:>9} "
            f"{r['e2e_p50_ms']:>8.2f} {r['loop_lag_p99_ms']:>8.2f} "
            f"{r['trustworthy']!s:>6}"
        )
    print(json.dumps({"bench": "workers", "cpus": len(cpus), "rows": rows}))


if __name__ == "__main__":
    main()
