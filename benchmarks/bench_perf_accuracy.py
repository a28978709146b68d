"""Timing accuracy of ``evalscope perf`` against the simulator's ground truth, request by request.

Runs the simulator in its own process (TTFT 200 ms, ITL 20 ms, 100 output tokens by default), drives it with
``run_perf`` (64 parallel, 640 requests), then joins each record with the simulator's truth by request id and
reports the client-minus-server error of TTFT, TPOT and E2E (mean / p50 / p99, ms), the difference of the
summary means, and output throughput versus tokens served over the server-side window.

The TTFT / E2E difference is decomposed: ``pre_handler`` is client send -> the simulator's handler start (its
``arrival`` stamp: connection set-up, the server's own queueing of a burst of requests), and
``*_delivery`` is server send -> client receive of the first and last token events, i.e. the client's own
timing error (both processes read the same CLOCK_MONOTONIC). ``pre_handler`` splits further with the
simulator's kernel receive stamp: ``client_send_side`` (kernel receive - client sent: the client's error) and
``sim_read_late`` (the simulator's loop stamp - kernel receive: server time any client sees).

Run: ``python benchmarks/bench_perf_accuracy.py [--parallel 64 --number 640]``. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from evalscope.perf.runner import run_perf
from evalscope.sim import SimConfig, SimProcess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--parallel", type=int, default=64)
    ap.add_argument("--number", type=int, default=640)
    ap.add_argument("--ttft-ms", type=float, default=200.0)
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--pin", action="store_true", help="pin the simulator to CPU 0 and the client to CPU 1")
    args = ap.parse_args()
    cfg = SimConfig(ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, output_tokens=args.tokens)
    with tempfile.TemporaryDirectory(prefix="bench-acc-") as out:
        # asyncio loop: the simulator then stamps the kernel's receive time of each request (send side)
        with SimProcess(cfg, cpus={0} if args.pin else None, loop="asyncio") as sim:
            if args.pin:
                import os

                os.sched_setaffinity(0, {1})
            summary = run_perf(
                url=sim.url,
                parallel=args.parallel,
                number=args.number,
                max_tokens=args.tokens,
                outputs_dir=out,
                live=False,
            )
            truth = {t["request_id"]: t for t in sim.fetch_truth() if t["request_id"].isdigit()}
        recs = [
            json.loads(line) for line in (Path(summary["run_dir"]) / "records.jsonl").read_text().splitlines()
        ]
    st = summary["stages"][0]
    err: dict[str, list[float]] = {"ttft": [], "tpot": [], "e2e": []}
    # decomposition: time before the simulator's handler started (its arrival stamp), and the client's own
    # receive error for the first token and the last token event (same monotonic clock in both processes)
    pre_handler: list[float] = []
    send_side: list[float] = []  # kernel receive - client sent: the client's own send-side delay
    sim_read_late: list[float] = []  # simulator loop stamp - kernel receive: the simulator's lateness
    first_delivery: list[float] = []
    last_delivery: list[float] = []
    for r in recs:
        t = truth.get(str(r["id"]))
        if t is None or r["status"] != "ok":
            continue
        n = r["completion_tokens"]
        err["ttft"].append(
            (r["first_token_ns"] - r["sent_ns"] - (t["first_token_ns"] - t["arrival_ns"])) / 1e6
        )
        err["e2e"].append((r["end_ns"] - r["sent_ns"] - (t["end_ns"] - t["arrival_ns"])) / 1e6)
        c_tpot = (r["last_token_ns"] - r["first_token_ns"]) / (n - 1)
        t_tpot = (t["chunk_ns"][-1] - t["first_token_ns"]) / (t["completion_tokens"] - 1)
        err["tpot"].append((c_tpot - t_tpot) / 1e6)
        pre_handler.append((t["arrival_ns"] - r["sent_ns"]) / 1e6)
        if t.get("kernel_arrival_ns") is not None:
            send_side.append((t["kernel_arrival_ns"] - r["sent_ns"]) / 1e6)
            sim_read_late.append((t["arrival_ns"] - t["kernel_arrival_ns"]) / 1e6)
        first_delivery.append((r["first_token_ns"] - t["first_token_ns"]) / 1e6)
        last_delivery.append((r["last_token_ns"] - t["chunk_ns"][-1]) / 1e6)
    tv = list(truth.values())
    truth_means = {
        "ttft": statistics.mean((t["first_token_ns"] - t["arrival_ns"]) / 1e6 for t in tv),
        "tpot": statistics.mean(
            (t["chunk_ns"][-1] - t["first_token_ns"]) / 1e6 / (t["completion_tokens"] - 1) for t in tv
        ),
        "e2e": statistics.mean((t["end_ns"] - t["arrival_ns"]) / 1e6 for t in tv),
    }
    summary_means = {"ttft": st["ttft"]["mean"], "tpot": st["tpot"]["mean"], "e2e": st["e2e_latency"]["mean"]}
    tokens = sum(t["completion_tokens"] for t in tv)
    window = (max(t["end_ns"] for t in tv) - min(t["arrival_ns"] for t in tv)) / 1e9
    served = tokens / window
    print(
        f"requests {st['requests']}  client trustworthy={st['client']['trustworthy']} ({st['client']['reason']})"
    )
    print(f"{'metric':<7}{'summary':>10}{'truth':>10}{'diff':>8}{'err p50':>9}{'err p99':>9}{'err max':>9}")
    rows = {}
    for k in ("ttft", "tpot", "e2e"):
        e = np.array(err[k])
        rows[k] = {
            "summary_mean_ms": round(summary_means[k], 3),
            "truth_mean_ms": round(truth_means[k], 3),
            "diff_ms": round(summary_means[k] - truth_means[k], 3),
            "err_p50_ms": round(float(np.percentile(e, 50)), 3),
            "err_p99_ms": round(float(np.percentile(e, 99)), 3),
            "err_max_ms": round(float(e.max()), 3),
        }
        r = rows[k]
        print(
            f"{k:<7}{r['summary_mean_ms']:>10.3f}{r['truth_mean_ms']:>10.3f}{r['diff_ms']:>8.3f}"
            f"{r['err_p50_ms']:>9.3f}{r['err_p99_ms']:>9.3f}{r['err_max_ms']:>9.3f}"
        )
    decomp = {
        "pre_handler_ms": pre_handler,
        "client_send_side_ms": send_side,
        "sim_read_late_ms": sim_read_late,
        "first_token_delivery_ms": first_delivery,
        "last_token_delivery_ms": last_delivery,
    }
    extra = {}
    for k, vals in decomp.items():
        if not vals:
            continue
        a = np.array(vals)
        extra[f"{k}_mean"] = round(float(a.mean()), 3)
        extra[f"{k}_p50"] = round(float(np.percentile(a, 50)), 3)
        extra[f"{k}_p99"] = round(float(np.percentile(a, 99)), 3)
        print(
            f"{k:<26} mean {a.mean():8.3f}  p50 {np.percentile(a, 50):8.3f}  p99 {np.percentile(a, 99):8.3f}"
        )
    out_tps = st["throughput"]["output_tokens_per_s"]
    print(
        f"output tokens/s: summary {out_tps:.1f}, served/window {served:.1f} ({100 * (out_tps / served - 1):+.2f} %)"
    )
    print(
        json.dumps(
            {
                "bench": "perf_accuracy",
                "parallel": args.parallel,
                "number": args.number,
                "succeeded": st["requests"]["succeeded"],
                "trustworthy": st["client"]["trustworthy"],
                "loop_lag_p99_ms": st["client"]["loop_lag_ms"]["p99"],
                **{f"{k}_{m}": v for k, r in rows.items() for m, v in r.items()},
                **extra,
                "output_tps": out_tps,
                "served_tps": served,
            }
        )
    )


if __name__ == "__main__":
    main()
