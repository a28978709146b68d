"""Throughput of the code sandbox: small programs per second at full parallelism, and per-program latency.

Each program runs the whole isolation path (launcher, namespaces, tmpfs work dir, per-run uid, rlimits, output
capture, leak sweep). Run: ``python benchmarks/bench_sandbox.py [N]`` (default 200 programs; as root or with
unprivileged user namespaces; ``--allow-unisolated`` to measure the unisolated path instead;
``--isolation=MODE`` to pick the launcher, e.g. ``bwrap`` or ``namespaces``; ``--harness`` to run the
humaneval-like program the way the code benchmarks do: under the completion-proof harness, nonce on stdin).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

from evalscope.eval.sandbox import Sandbox

SMALL = "def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nprint('ok')\n"
HUMANEVAL_LIKE = (
    "from typing import List\n\n"
    "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    "    for i, a in enumerate(numbers):\n"
    "        for j, b in enumerate(numbers):\n"
    "            if i != j and abs(a - b) < threshold:\n"
    "                return True\n"
    "    return False\n\n"
    "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)\n"
    "assert not has_close_elements([1.0, 2.0, 5.9, 4.0, 5.0], 0.8)\n"
)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def measure(sb: Sandbox, program: str, n: int, harness: bool = False) -> dict[str, float]:
    t0 = time.perf_counter()
    if harness:
        from evalscope.eval.scoring.code import check_proof, guarded_program, new_nonce

        cand, _, tests = program.partition("assert ")
        wrapped = guarded_program(cand, "assert " + tests)

        async def one() -> Any:
            nonce = new_nonce()
            r = await sb.run(wrapped, 30.0, stdin=(nonce + "\n").encode())
            if not check_proof(r.stdout, nonce)[0]:
                r.status = "failed"
            return r

        results = await asyncio.gather(*(one() for _ in range(n)))
    else:
        results = await asyncio.gather(*(sb.run(program, 30.0) for _ in range(n)))
    wall = time.perf_counter() - t0
    bad = [r for r in results if r.status != "passed"]
    if bad:
        raise SystemExit(f"{len(bad)} programs did not pass: {bad[0]}")
    lat = [r.duration_s for r in results]
    return {
        "programs": n,
        "wall_s": wall,
        "programs_per_s": n / wall,
        "p50_ms": statistics.median(lat) * 1000,
        "p95_ms": pct(lat, 0.95) * 1000,
    }


async def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 200
    unisolated = "--allow-unisolated" in sys.argv
    harness = "--harness" in sys.argv
    iso = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--isolation=")), "auto")
    cpus = os.cpu_count() or 1
    full = Sandbox(allow_unisolated=unisolated, isolation=iso)
    mode = await full.start()
    await full.run(SMALL, 30.0)  # warm-up (page cache)
    rows = {
        f"small x{n} (parallel {cpus})": await measure(full, SMALL, n),
        f"humaneval-like x{n} (parallel {cpus})": await measure(full, HUMANEVAL_LIKE, n, harness),
        "small x30 (parallel 1)": await measure(
            Sandbox(max_parallel=1, allow_unisolated=unisolated, isolation=iso), SMALL, 30
        ),
    }
    print(f"isolation: {mode}, cpus: {cpus}")
    print(f"{'case':<34}{'programs/s':>12}{'p50 ms':>10}{'p95 ms':>10}{'wall s':>9}")
    for k, v in rows.items():
        print(
            f"{k:<34}{v['programs_per_s']:>12.1f}{v['p50_ms']:>10.1f}{v['p95_ms']:>10.1f}{v['wall_s']:>9.2f}"
        )
    first = next(iter(rows.values()))
    seq = rows["small x30 (parallel 1)"]
    print(
        json.dumps(
            {
                "bench": "sandbox",
                "harness": harness,
                "humaneval_like_programs_per_s": round(rows[f"humaneval-like x{n} (parallel {cpus})"]["programs_per_s"], 2),
                "isolation": mode,
                "cpus": cpus,
                "programs": n,
                "programs_per_s": round(first["programs_per_s"], 2),
                "p50_ms": round(first["p50_ms"], 1),
                "p95_ms": round(first["p95_ms"], 1),
                "sequential_programs_per_s": round(seq["programs_per_s"], 2),
                "sequential_p50_ms": round(seq["p50_ms"], 1),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
