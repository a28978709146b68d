"""Memory stays flat: N requests (default 200,000) against the simulator at zero latency.

The simulator runs as a separate process (``SimProcess``, truth recording off); perf runs in this process
through the Python API with a reporter that samples peak RSS (``ru_maxrss``) when 10 % and 100 % of the
requests have completed, and the client CPU time per request. Prints a table and, last, one JSON line.

Run: ``python benchmarks/bench_memory.py`` (a few minutes on 2 cores) or ``--requests 20000`` for a quick look.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from typing import Any

from evalscope.perf.runner import LiveStage, Reporter, run_perf
from evalscope.sim import SimConfig, SimProcess


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Sampler(Reporter):
    def __init__(self, total: int) -> None:
        self.total = total
        self.marks: dict[str, dict[str, float]] = {}
        self.t0 = time.monotonic()
        self.cpu0 = sum(os.times()[:2])

    def _mark(self, name: str, done: int) -> None:
        cpu = sum(os.times()[:2]) - self.cpu0
        self.marks[name] = {
            "done": done,
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "rss_mib": round(current_rss_mib(), 1),
            "elapsed_s": round(time.monotonic() - self.t0, 2),
            "cpu_us_per_request": round(cpu / max(1, done) * 1e6, 1),
        }

    def tick(self, live: LiveStage | None) -> None:
        if live is None:
            return
        done = live.sent
        if "10%" not in self.marks and done >= self.total // 10:
            self._mark("10%", done)
        if "50%" not in self.marks and done >= self.total // 2:
            self._mark("50%", done)

    def stage_end(self, summary: dict[str, Any]) -> None:
        self._mark("100%", summary["requests"]["sent"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--parallel", type=int, default=64)
    ap.add_argument("--output-tokens", type=int, default=8)
    args = ap.parse_args()
    sim_cfg = SimConfig(ttft_ms=0, itl_ms=0, output_tokens=args.output_tokens, truth=False, spin_us=0)
    sampler = Sampler(args.requests)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as out, SimProcess(sim_cfg) as sim:
        summary = run_perf(
            url=sim.url,
            parallel=args.parallel,
            number=args.requests,
            max_tokens=args.output_tokens,
            min_prompt_length=16,
            max_prompt_length=16,
            outputs_dir=out,
            live=False,
            reporter=sampler,
        )
    st = summary["stages"][0]
    m = sampler.marks
    print(
        f"requests {st['requests']['sent']} ok {st['requests']['succeeded']} failed {st['requests']['failed']}"
        f" in {st['duration_s']:.1f} s ({st['throughput']['requests_per_s']:.0f} req/s)"
    )
    print(f"{'mark':<6}{'done':>9}{'peak RSS MiB':>14}{'RSS MiB':>10}{'CPU us/req':>12}")
    for k in ("10%", "50%", "100%"):
        if k in m:
            r = m[k]
            print(
                f"{k:<6}{int(r['done']):>9}{r['peak_rss_mib']:>14}{r['rss_mib']:>10}{r['cpu_us_per_request']:>12}"
            )
    growth = m["100%"]["peak_rss_mib"] - m.get("10%", m["100%"])["peak_rss_mib"]
    print(f"peak RSS growth from 10% to 100%: {growth:+.1f} MiB")
    print(
        json.dumps(
            {
                "bench": "perf_memory",
                "requests": st["requests"]["sent"],
                "succeeded": st["requests"]["succeeded"],
                "parallel": args.parallel,
                "req_per_s": st["throughput"]["requests_per_s"],
                "peak_rss_mib_10pct": m.get("10%", {}).get("peak_rss_mib"),
                "peak_rss_mib_100pct": m["100%"]["peak_rss_mib"],
                "rss_growth_mib": round(growth, 1),
                "client_cpu_us_per_request": m["100%"]["cpu_us_per_request"],
                "loop_lag_p99_ms": st["client"]["loop_lag_ms"]["p99"],
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
