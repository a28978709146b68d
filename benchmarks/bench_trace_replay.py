"""Trace replay fidelity: a mooncake-style trace sent at its recorded times, checked against the trace and the
simulator's truth.

Builds a 2,000-request trace by default (Poisson arrivals at ``--rate``; prompts of 1-4 blocks of
``--block`` tokens, half of them led by one of eight shared "system prompt" runs of 2 blocks, as in the
Mooncake traces' ``hash_ids``), or reads ``--trace FILE``. Replays it with ``--dataset trace`` against the
simulator (its own process, prefix cache on, asyncio loop so it stamps each request's kernel receive time)
and reports, per request:

- ``send_lateness``: client sent - trace time (the ``schedule_error`` of the summary), p50 / p99 / max ms;
- ``arrival_lateness``: the simulator's kernel receive - trace time (what the server saw), when stamped;
- ``prefix``: cached tokens the server reported vs the leading run of blocks some earlier request sent.

The target is p99 send lateness within 1 ms at ``--time-scale 1``. On a shared, loaded machine the tail
reflects other processes (the summary's client verdict says so); ``--pin`` puts the simulator on CPU 0 and
the client on CPU 1.

Run: ``python benchmarks/bench_trace_replay.py [--requests 2000 --rate 40 --pin]``. Prints a table, then one
JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from evalscope.perf.runner import run_perf
from evalscope.sim import SimConfig, SimProcess


def make_trace(path: Path, n: int, rate: float, block: int, seed: int) -> None:
    rng = random.Random(seed)
    t = 0.0
    rows = []
    for i in range(n):
        t += rng.expovariate(rate) * 1000.0
        own = [100_000 + 8 * i + k for k in range(rng.randint(1, 2))]
        shared = [2 * (i % 8), 2 * (i % 8) + 1] if rng.random() < 0.5 else []
        ids = shared + own
        rows.append(
            {
                "timestamp": round(t, 3),
                "input_length": len(ids) * block - rng.randint(0, block - 1),
                "output_length": rng.randint(4, 16),
                "hash_ids": ids,
            }
        )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def pct(a: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=40.0, help="mean requests/s of the generated trace")
    ap.add_argument("--block", type=int, default=512, help="tokens per hash_ids block")
    ap.add_argument("--trace", type=Path, default=None, help="replay this mooncake-style JSONL instead")
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--pin", action="store_true", help="pin the simulator to CPU 0 and the client to CPU 1")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        trace = args.trace or Path(tmp) / "trace.jsonl"
        if args.trace is None:
            make_trace(trace, args.requests, args.rate, args.block, seed=0)
        rows = [json.loads(x) for x in trace.read_text().splitlines() if x.strip()]
        rows.sort(key=lambda r: r["timestamp"])
        sim_cfg = SimConfig(ttft_ms=20, itl_ms=2, output_tokens=16, prefix_cache=True, prefix_block=16)
        with SimProcess(sim_cfg, cpus={0} if args.pin else None, loop="asyncio") as sim:
            if args.pin:
                os.sched_setaffinity(0, {1})
            summary = run_perf(
                url=sim.url,
                dataset="trace",
                dataset_path=str(trace),
                trace_block_size=args.block,
                time_scale=args.time_scale,
                outputs_dir=str(Path(tmp) / "out"),
                live=False,
            )
            truth = {str(t["request_id"]): t for t in sim.fetch_truth()}
        recs = [json.loads(x) for x in (Path(summary["run_dir"]) / "records.jsonl").read_text().splitlines()]
    recs.sort(key=lambda r: int(r["id"]))
    st = summary["stages"][0]
    t0 = recs[0]["scheduled_ns"]
    due = np.array(
        [
            t0 + round((r["timestamp"] - rows[0]["timestamp"]) * 1e6 * args.time_scale)
            for r in rows[: len(recs)]
        ]
    )
    sent = np.array([r["sent_ns"] for r in recs])
    send_late = (sent - due) / 1e6
    kern = [truth.get(str(r["id"]), {}).get("kernel_arrival_ns") for r in recs]
    arr_late = np.array([(k - d) / 1e6 for k, d in zip(kern, due, strict=True) if k is not None])
    # prefix truth: the leading run of full blocks shared with any earlier request
    seen: list[list[int]] = []
    expect = got = agree = 0
    for rec, row in zip(recs, rows, strict=False):
        ids = row.get("hash_ids", [])[: row["input_length"] // args.block]
        run = max(
            (
                len(list(itertools.takewhile(lambda ab: ab[0] == ab[1], zip(ids, s, strict=False))))
                for s in seen
            ),
            default=0,
        )
        seen.append(ids)
        cached = (truth.get(str(rec["id"])) or {}).get("cached_tokens") or 0
        expect += run * args.block
        got += cached
        agree += cached == run * args.block
    out: dict[str, Any] = {
        "bench": "trace_replay",
        "requests": len(recs),
        "succeeded": st["requests"]["succeeded"],
        "time_scale": args.time_scale,
        "send_lateness_ms": pct(send_late),
        "arrival_lateness_ms": pct(arr_late) if len(arr_late) else None,
        "schedule_error": st["schedule_error"],
        "prefix": {
            "expected_cached_tokens": expect,
            "server_cached_tokens": got,
            "requests_matching": agree,
            "client_hit_rate": (st["server"].get("prefix_cache") or {}).get("hit_rate"),
        },
        "client_trustworthy": st["client"]["trustworthy"],
        "client_reason": st["client"].get("reason"),
        "pinned": args.pin,
    }
    sl = out["send_lateness_ms"]
    print(f"requests {out['requests']} ({out['succeeded']} ok) at time scale {args.time_scale:g}")
    print(f"send lateness vs trace (ms): p50 {sl['p50']:.3f}  p99 {sl['p99']:.3f}  max {sl['max']:.3f}")
    if out["arrival_lateness_ms"]:
        al = out["arrival_lateness_ms"]
        print(
            f"server kernel arrival vs trace (ms): p50 {al['p50']:.3f}  p99 {al['p99']:.3f}  max {al['max']:.3f}"
        )
    px = out["prefix"]
    print(
        f"prefix cache: server cached {px['server_cached_tokens']} tokens, trace predicts "
        f"{px['expected_cached_tokens']}; {px['requests_matching']}/{len(recs)} requests exact"
    )
    print(f"client verdict: {'trustworthy' if out['client_trustworthy'] else out['client_reason']}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
