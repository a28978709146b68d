"""Eval dispatch efficiency: GSM8K (1,319 samples) against the simulator with 1 s per reply.

With ``--eval-batch-size 128`` the ideal wall time is ceil(1319 / 128) x 1 s = 11 s; the target is under
1.15x that. The simulator runs in a child process (its own CPU); the eval runs in this process exactly as
``evalscope eval`` does (journal, scoring, reports); the timed span is the whole ``run_eval`` call (loading,
hashing, dispatch, reports), after module imports. Without ../shared/datasets a synthetic GSM8K-shaped file
is used. Prints a table and a JSON line last.

Run: ``python benchmarks/bench_eval_throughput.py [--samples 1319] [--batch 128] [--latency 1.0]``
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "datasets"


def synthetic_gsm8k(root: Path, n: int) -> Path:
    d = root / "gsm8k"
    d.mkdir(parents=True)
    with (d / "test.jsonl").open("w") as f:
        for i in range(n):
            q = f"Tom has {i} apples and buys {i + 3} more. How many apples does Tom have now? (item {i})"
            f.write(
                json.dumps({"question": q, "answer": f"{i} + {i + 3} = {2 * i + 3}\n#### {2 * i + 3}"}) + "\n"
            )
    with (d / "train.jsonl").open("w") as f:
        f.write(json.dumps({"question": "1+1?", "answer": "1+1=2\n#### 2"}) + "\n")
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1319)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--latency", type=float, default=1.0, help="seconds per reply (all of it as TTFT)")
    ap.add_argument("--target", type=float, default=1.15)
    args = ap.parse_args()

    import sympy  # noqa: F401 - imports are process start-up, not eval time (like the interpreter's)

    from evalscope.eval.runner import run_eval
    from evalscope.eval.scoring import math_equiv  # noqa: F401
    from evalscope.sim import SimConfig, SimProcess

    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        tmpdir = Path(tmp)
        if (SHARED / "gsm8k" / "test.jsonl").is_file() and args.samples <= 1319:
            data_dir, source = SHARED, "gsm8k test (real)"
        else:
            data_dir, source = synthetic_gsm8k(tmpdir / "data", args.samples), "synthetic"
        sim_cfg = SimConfig(
            policy="scripted",
            script_default="Adding up gives the total.\n\n\\boxed{42}",
            ttft_ms=args.latency * 1000.0,
            itl_ms=0.0,
            tokens_per_chunk=64,
            models=["bench-model"],
            truth=False,
        )
        with SimProcess(sim_cfg) as sim:
            cfg = {
                "model": "bench-model",
                "api_url": sim.url,
                "datasets": ["gsm8k"],
                "dataset_dir": str(data_dir),
                "limit": args.samples,
                "eval_batch_size": args.batch,
                "work_dir": str(tmpdir / "out"),
                "quiet": True,
                "preflight": False,
            }
            t0 = time.perf_counter()
            result = run_eval(cfg, out=io.StringIO())
            wall = time.perf_counter() - t0
        rep = result.report("gsm8k")
    n = rep["num_samples"] + rep["errored"]
    ideal = math.ceil(n / args.batch) * args.latency
    ratio = wall / ideal
    perf = rep["performance"]
    rows = [
        ("data", source),
        ("samples", str(n)),
        ("errored", str(rep["errored"])),
        ("eval batch size", str(args.batch)),
        ("latency per reply (s)", f"{args.latency:g}"),
        ("ideal wall (s)", f"{ideal:.2f}"),
        ("measured wall, whole run_eval (s)", f"{wall:.2f}"),
        ("measured dispatch wall (s)", f"{perf['wall_time_s']:.2f}"),
        ("ratio (whole / ideal)", f"{ratio:.3f}"),
        ("target", f"< {args.target}"),
        ("mean request latency (s)", f"{perf['latency_s']['mean']:.3f}"),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    ok = ratio < args.target and rep["errored"] == 0
    print(
        json.dumps(
            {
                "bench": "eval_throughput",
                "samples": n,
                "batch": args.batch,
                "ideal_s": ideal,
                "wall_s": round(wall, 3),
                "dispatch_wall_s": round(perf["wall_time_s"], 3),
                "ratio": round(ratio, 4),
                "target": args.target,
                "pass": ok,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
