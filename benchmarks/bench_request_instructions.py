"""User-space instructions per 8-token request of the whole ``evalscope perf``, counted by valgrind (callgrind).

Why: client CPU per request (``bench_request_cpu.py``) varies by 10-20 % from run to run on a shared VM, more
than most single changes to the hot path are worth. An instruction count does not depend on the neighbours:
it is the same to a few thousand per request from run to run, so an A/B of two trees is readable from one run
each. It leaves out what the kernel does (syscalls, the network stack: about a fifth of the CPU here) and
what cache misses cost, so it ranks changes to our own Python work; ``bench_request_cpu.py`` stays the figure.

Method: ``evalscope perf`` against a zero-latency simulator (run natively, pinned to CPU 0) under
``valgrind --tool=callgrind``, at ``--requests`` and a tenth of it; the marginal count is
(Ir_big - Ir_small) / (N_big - N_small), which removes start-up, imports and the report's fixed work. Keep the
small run at 2,000 requests or more: the report's sample of 2,000 records is a bounded cost that would
otherwise look per-request. About 15 s per 1,000 requests per tree. Without valgrind it says so and skips.

    python benchmarks/bench_request_instructions.py [--requests 12000] [--baseline-src <worktree>/src]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from evalscope.sim import SimConfig, SimProcess


def instructions(url: str, n: int, parallel: int, tokens: int, src: str | None, cpus: set[int] | None) -> int:
    """Instructions (Ir) of one ``evalscope perf`` run of ``n`` requests (``src``: another tree's package)."""
    env = dict(os.environ, PYTHONPATH=src) if src else None
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            *("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"),
            *(sys.executable, "-m", "evalscope", "perf", "--no-live", "--url", url),
            *(
                "--parallel",
                str(parallel),
                "--number",
                str(n),
                "--max-tokens",
                str(tokens),
                "--outputs-dir",
                tmp,
            ),
        ]
        proc = subprocess.run(
            cmd,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or m is None:
        raise SystemExit(f"evalscope perf under valgrind failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=12000)
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--baseline-src", help="a src/ folder of another tree (a git worktree): counted too")
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is not installed (apt-get install valgrind)")
        print(json.dumps({"bench": "request_instructions", "skipped": "valgrind not installed"}))
        return
    n, small = a.requests, max(2000, a.requests // 10)
    if n <= small:
        raise SystemExit(f"--requests must be above {small}")
    allowed = sorted(os.sched_getaffinity(0))
    sim_cpus, cli_cpus = ({allowed[0]}, {allowed[1]}) if len(allowed) >= 2 else (None, None)
    cfg = SimConfig(ttft_ms=0, itl_ms=0, output_tokens=a.tokens, truth=False)
    out: dict[str, object] = {
        "bench": "request_instructions",
        "requests": n,
        "small": small,
        "tokens": a.tokens,
    }
    with SimProcess(cfg, cpus=sim_cpus) as sim:
        for name, src in (("ours", None), ("baseline", a.baseline_src)):
            if name == "baseline" and not src:
                continue
            lo = instructions(sim.url, small, a.parallel, a.tokens, src, cli_cpus)
            hi = instructions(sim.url, n, a.parallel, a.tokens, src, cli_cpus)
            per = (hi - lo) / (n - small)
            out[name] = {
                "instructions_per_request": round(per),
                "fixed_instructions": round(lo - per * small),
            }
            print(f"{name:<9} {per / 1e3:8.1f} k instructions per request")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
