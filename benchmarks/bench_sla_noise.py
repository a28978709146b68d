"""How repeatable can a rate SLA answer be? The exact queue model's answer, for a p99 TTFT target.

The capacity issue asks that an ``--sla-variable rate`` answer for ``p99_ttft <= 300`` (simulator: 4 slots,
100 ms to the first token, 10 ms per token, 20 tokens) meet the SLO in three reruns while 10 % above it fails at
least twice. Whether any search can do that is a property of the queue, not of the search: a probe of n
requests estimates the p99 of a correlated waiting-time process, and near the threshold that p99 moves slowly
with the rate (189 ms of wait at 6.5 req/s, 209 ms at 7.0). This script measures, on the exact FIFO model
(:func:`evalscope.sim.capacity.queue_waits`, the simulator's own rule on an ideal timeline, Poisson arrivals,
a probe starting from an empty queue after one second of warm-up arrivals, as ``perf --sla-auto-tune`` runs
them):

1. the steady-state p99 TTFT per rate (where the SLO truly flips);
2. P(one probe of n requests meets the SLO) per rate and n;
3. for each n, the best chance over all answers r that r passes 3 of 3 reruns *and* 1.1 r fails at least 2
   of 3 (the issue's bar), and how long one probe of n requests takes at that rate.

No server and no network: pure computation (a few minutes). Run:
``python benchmarks/bench_sla_noise.py [--trials 200] [--sizes 200,1000,5000,20000] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from evalscope.sim.capacity import queue_waits

K = 4
TTFT_S = 0.1
SERVICE_S = 0.1 + 19 * 0.01  # 20 tokens: first at 100 ms, then 19 x 10 ms
TARGET_MS = 300.0
RATES = [5.5, 6.0, 6.3, 6.5, 6.7, 6.9, 7.1, 7.4, 7.7, 8.0]


def p99_ttft_ms(rng: np.random.Generator, rate: float, n: int, warm: int) -> float:
    """One probe: ``warm + n`` Poisson arrivals into an empty queue; p99 TTFT of the last ``n``."""
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n + warm)).tolist()
    waits = np.asarray(queue_waits(arrivals, K, SERVICE_S)[warm:])
    return float(np.percentile(waits, 99) * 1000 + TTFT_S * 1000)


def steady_state(rng: np.random.Generator, rates: list[float], n: int = 400_000) -> dict[float, float]:
    return {r: p99_ttft_ms(rng, r, n, 2_000) for r in rates}


def pass_table(rng: np.random.Generator, sizes: list[int], rates: list[float], trials: int) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for n in sizes:
        t = max(20, trials if n <= 5_000 else trials // 3)
        row = {}
        for r in rates:
            vals = np.array([p99_ttft_ms(rng, r, n, max(1, round(r))) for _ in range(t)])
            row[r] = {"p_pass": float(np.mean(vals <= TARGET_MS)), "median_p99_ms": float(np.median(vals))}
        out[n] = {"trials": t, "rates": row}
        print(
            f"n={n:>6} ({t} probes per rate): " + "  ".join(f"{r:g}:{row[r]['p_pass']:.2f}" for r in rates),
            flush=True,
        )
    return out


def bar_chance(row: dict[float, Any]) -> tuple[float, float]:
    """max over answers r of P(r passes 3/3) * P(1.1 r fails >= 2 of 3), interpolating P(pass) in the rate."""
    rates = sorted(row)
    ps = [row[r]["p_pass"] for r in rates]
    best, best_r = 0.0, rates[0]
    for r in np.linspace(rates[0], rates[-1] / 1.1, 200):
        p = float(np.interp(r, rates, ps))
        q = float(np.interp(1.1 * r, rates, ps))
        chance = p**3 * ((1 - q) ** 3 + 3 * (1 - q) ** 2 * q)
        if chance > best:
            best, best_r = chance, float(r)
    return best, best_r


def _threshold(ss: dict[float, float]) -> float:
    """The rate where the steady-state p99 TTFT crosses the target (linear between the measured rates)."""
    rates = sorted(ss)
    for lo, hi in itertools.pairwise(rates):
        if ss[lo] <= TARGET_MS < ss[hi]:
            return round(lo + (hi - lo) * (TARGET_MS - ss[lo]) / (ss[hi] - ss[lo]), 2)
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--trials", type=int, default=200, help="probes per (rate, size); a third for sizes > 5000"
    )
    ap.add_argument("--sizes", default="200,1000,5000,20000", help="measured requests per probe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    sizes = [int(s) for s in args.sizes.split(",")]

    print(
        f"model: K={K}, S={SERVICE_S:.2f} s, capacity {K / SERVICE_S:.2f} req/s; SLO p99 TTFT <= {TARGET_MS:g} ms"
    )
    ss = steady_state(rng, RATES)
    print("steady-state p99 TTFT (400,000 arrivals): " + "  ".join(f"{r:g}:{v:.0f}" for r, v in ss.items()))
    table = pass_table(rng, sizes, RATES, args.trials)
    print("\nthe issue's bar (answer r passes 3/3, 1.1 r fails >= 2/3), best case over r:")
    bars = {}
    for n, t in table.items():
        chance, r = bar_chance(t["rates"])
        bars[n] = {"chance": chance, "answer": r, "probe_s": n / r}
        print(f"  n={n:>6}: at most {chance:.0%} (answer {r:.2f} req/s; one probe {n / r / 60:.1f} min)")
    line = {"bench": "sla_noise", "steady_state_threshold_rps": _threshold(ss)}
    line.update({f"bar_chance_n{n}": round(b["chance"], 3) for n, b in bars.items()})
    print(orjson.dumps(line).decode())
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {"steady_state_p99_ttft_ms": ss, "pass": table, "bar": bars},
                option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
