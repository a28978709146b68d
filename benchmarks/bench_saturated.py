"""Numbers that lean one way: a saturated perf run and an eval with failing requests (issue 11, items 4-6).

Run it against two trees to get before/after figures (the script reads old summaries too):

    PYTHONPATH=src python benchmarks/bench_saturated.py
    PYTHONPATH=/path/to/old/src python benchmarks/bench_saturated.py

perf: the simulator serves every request in about ``ttft + tokens * itl`` (1.3 s here), and ``--parallel``
caps the requests in flight (the server's concurrency, as ``max_num_seqs`` would), so capacity is about
``parallel / 1.3 s``, below the offered ``--rate``: at the end of ``--duration`` requests are still running
and arrivals are still waiting for a slot. Output lengths are uniform over 1..7 tokens, so some replies have
one token, for which TPOT is undefined.

eval: the simulator answers ``choice`` replies and fails a share of requests with HTTP 500; with
``max_attempts=1`` those samples stay errored.

Measured 2026-12-04 on the shared 2-CPU machine (loaded by other jobs), defaults (rate 40/s, parallel 16,
duration 4 s, TTFT 1000 ms, ITL 50 ms, SLOs ttft:2000 tpot:100; eval: ARC --limit 60, error rate 0.2):

| figure | before (6b287ef) | after |
|---|---|---|
| perf: requests the summary accounts for | 63 sent (47 ok, 16 cancelled) | 64 sent + 87 never sent = 151 offered |
| perf: incomplete at the deadline | not reported | 103 (16 in flight, 87 waiting for a slot), latency from schedule ≥ p50 1407 / max 2528 ms |
| perf: goodput ratio | 95.7 % (45 / 47 finished) | 23.2 % (35 / 151) |
| perf: one-token replies (TPOT undefined) | counted as meeting the TPOT SLO | 13, not met |
| eval: accuracy | 20.4 % over 54 answered, errors dropped | 20.4 % answered, 18.3 % all (6 errored = wrong) |
| eval: exit code with 10 % errored samples | 0 | 4 (--max-error-rate 0.05) |
"""

from __future__ import annotations

import argparse
import json
import tempfile
from typing import Any

from evalscope.sim import SimConfig, SimProcess


def perf_figures(
    rate: float, parallel: int, duration: float, itl_ms: float, ttft_ms: float
) -> dict[str, Any]:
    from evalscope.perf.runner import run_perf

    sim_cfg = SimConfig(
        ttft_ms=ttft_ms, itl_ms=itl_ms, output_tokens=4, output_dist="uniform", output_spread=0.75, seed=1
    )
    with SimProcess(sim_cfg) as sim, tempfile.TemporaryDirectory() as out:
        s = run_perf(
            url=sim.url,
            model="sim-model",
            rate=rate,
            parallel=[parallel],
            duration=duration,
            max_tokens=None,
            goodput={"ttft": 2000, "tpot": 2 * itl_ms},
            outputs_dir=out,
            seed=1,
        )
    st = s["stages"][0]
    r = st["requests"]
    g = st["goodput"]
    inc = st.get("incomplete_at_deadline") or {}
    lb = inc.get("latency_from_schedule_lower_bound") or {}
    fs = st["latency_from_schedule"] or {}
    return {
        "sent": r["sent"],
        "succeeded": r["succeeded"],
        "failed": r["failed"],
        "cancelled": r["cancelled"],
        "incomplete_at_deadline": r.get("incomplete_at_deadline", "n/a"),
        "incomplete_in_flight": inc.get("in_flight", "n/a"),
        "incomplete_never_sent": inc.get("queued", "n/a"),
        "goodput_good": g["good"],
        "goodput_ratio": g["ratio"],
        "goodput_denominator": g.get("denominator", r["succeeded"] + r["failed"]),
        "tpot_undefined": (g.get("slo_undefined") or {}).get("tpot", "n/a"),
        "from_schedule_p50_ms": fs.get("p50"),
        "from_schedule_p99_ms": fs.get("p99"),
        "incomplete_lower_bound_p50_ms": lb.get("p50", "n/a"),
        "incomplete_lower_bound_max_ms": lb.get("max", "n/a"),
    }


def eval_figures(error_rate: float, limit: int, dataset_dir: str) -> dict[str, Any]:
    """``evalscope eval`` (the CLI, for its exit code) on ARC against a simulator failing ``error_rate``."""
    import os
    import pathlib
    import subprocess
    import sys

    import evalscope

    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(evalscope.__file__).parents[1])}
    sim_cfg = SimConfig(ttft_ms=1, itl_ms=0, policy="choice", error_rate=error_rate, seed=3)
    with SimProcess(sim_cfg) as sim, tempfile.TemporaryDirectory() as work:
        cmd = [
            sys.executable, "-m", "evalscope", "eval", "--datasets", "arc", "--limit", str(limit),
            "--dataset-dir", dataset_dir, "--api-url", f"{sim.url}/v1", "--model", "sim-model",
            "--max-attempts", "1", "--work-dir", work, "--run-name", "r",
        ]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        reps = list(pathlib.Path(work).glob("r/reports/*/arc.json"))
        rep = json.loads(reps[0].read_text()) if reps else {}
    return {
        "num_samples_scored": rep.get("num_samples"),
        "errored": rep.get("errored"),
        "score_answered": rep.get("score"),
        "score_all_errors_wrong": rep.get("score_all", "n/a"),
        "error_rate": rep.get("error_rate", "n/a"),
        "exit_code": r.returncode,
        "last_stderr_line": (r.stderr.strip().splitlines() or [""])[-1][:200],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=40.0)
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--ttft-ms", type=float, default=1000.0)
    ap.add_argument("--itl-ms", type=float, default=50.0)
    ap.add_argument("--eval-error-rate", type=float, default=0.2)
    ap.add_argument("--eval-limit", type=int, default=60)
    ap.add_argument("--dataset-dir", default="/work/shared/datasets")
    a = ap.parse_args()
    out = {
        "perf": perf_figures(a.rate, a.parallel, a.duration, a.itl_ms, a.ttft_ms),
        "eval": eval_figures(a.eval_error_rate, a.eval_limit, a.dataset_dir),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
