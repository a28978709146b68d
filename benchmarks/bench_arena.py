"""Arena benchmark: interval coverage of the true ratings, and judge throughput against a slow judge.

Coverage: ``--seeds`` arenas (3 models x ``--questions`` questions, pairwise-all with swap) judged in-process
by the simulator's judge policy with known ratings, a position bias and ties; reports how often the bootstrap
interval holds each true rating (stated level ``--level``), how often the ranking equals the true order, and
the mean recovered position effect.

Throughput: the same arena against the simulator server with ``--latency`` s per judge call at
``--eval-batch-size`` calls in flight; ideal wall time is ceil(calls / batch) * latency (the issue asks for
<= 1.2x at 480 calls, 1 s, batch 64).

    python benchmarks/bench_arena.py --seeds 100 --questions 80          # coverage + timing (about 1-2 min)
    python benchmarks/bench_arena.py --seeds 0 --latency 1.0             # timing only
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path

TRUE = {"alpha": 1100.0, "beta": 1000.0, "gamma": 880.0}


def _inputs(d: Path, n_q: int, seed: int) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    qs = d / "questions.jsonl"
    cats = ["writing", "reasoning", "math", "coding"]
    with qs.open("w") as f:
        for i in range(n_q):
            f.write(
                json.dumps({"question_id": f"q{i}", "question": f"Question {i}?", "category": cats[i % 4]})
                + "\n"
            )
    files = []
    for m in TRUE:
        p = d / f"{m}.jsonl"
        files.append(str(p))
        with p.open("w") as f:
            for i in range(n_q):
                ans = f"{m} answers {i}: " + "word " * rng.randint(30, 90)
                f.write(json.dumps({"question_id": f"q{i}", "model": m, "answer": ans}) + "\n")
    return str(qs), files


def coverage(seeds: int, n_q: int, rounds: int, level: float, position_bias: float) -> dict[str, object]:
    from evalscope.arena.runner import run_arena
    from evalscope.arena.simjudge import LocalSimJudge
    from evalscope.sim.judge import JudgeTruth

    truth = JudgeTruth(ratings=TRUE, position_bias=position_bias, tie_rate=0.3, strong_rate=0.3)
    anchor = "alpha"
    hits = {m: 0 for m in TRUE if m != anchor}
    order_ok = 0
    pos: list[float] = []
    first: list[float] = []
    err: dict[str, list[float]] = {m: [] for m in hits}
    with tempfile.TemporaryDirectory() as tmp:
        qs, files = _inputs(Path(tmp), n_q, 0)
        for s in range(seeds):
            rep = run_arena(
                {
                    "answers": files,
                    "questions": qs,
                    "work_dir": tmp,
                    "bootstrap": rounds,
                    "ci_level": level,
                    "seed": s,
                    "quiet": True,
                    "baseline": anchor,
                },
                judge=LocalSimJudge(truth, seed=1000 + s),
            ).report
            rows = {r["model"]: r for r in rep["ratings"]}
            for m in hits:
                want = 1000.0 + TRUE[m] - TRUE[anchor]
                hits[m] += rows[m]["ci_low"] <= want <= rows[m]["ci_high"]
                err[m].append(rows[m]["rating"] - want)
            ranked = [r["model"] for r in rep["ratings"]]
            order_ok += ranked == sorted(TRUE, key=lambda m: -TRUE[m])
            pos.append(rep["position_effect"]["logit"])
            first.append(rep["consistency"]["first_position_win_rate"])
    return {
        "seeds": seeds,
        "questions": n_q,
        "judge_calls_per_run": 6 * n_q,
        "bootstrap_rounds": rounds,
        "level": level,
        "coverage": {m: hits[m] / seeds for m in hits},
        "mean_rating_error_elo": {m: sum(v) / len(v) for m, v in err.items()},
        "ranking_correct": order_ok / seeds,
        "true_position_logit": position_bias,
        "mean_fitted_position_logit": sum(pos) / len(pos),
        "mean_first_position_win_rate": sum(first) / len(first),
    }


def timing(n_q: int, latency: float, batch: int) -> dict[str, object]:
    from evalscope.arena.runner import run_arena
    from evalscope.sim import SimConfig, SimProcess
    from evalscope.sim.judge import JudgeTruth

    sim = SimProcess(
        SimConfig(
            policy="judge",
            judge=JudgeTruth(ratings=TRUE),
            models=["judge"],
            ttft_ms=latency * 1000,
            itl_ms=0.0,
            truth=False,
        )
    ).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            qs, files = _inputs(Path(tmp), n_q, 0)
            t0 = time.perf_counter()
            res = run_arena(
                {
                    "answers": files,
                    "questions": qs,
                    "work_dir": tmp,
                    "bootstrap": 100,
                    "quiet": True,
                    "judge_model": "judge",
                    "judge_api_url": str(sim.url),
                    "eval_batch_size": batch,
                }
            )
            wall = time.perf_counter() - t0
    finally:
        sim.stop()
    calls = res.sent
    ideal = math.ceil(calls / batch) * latency
    return {
        "judge_calls": calls,
        "latency_s": latency,
        "batch": batch,
        "wall_s": round(wall, 3),
        "judging_wall_s": res.report["run"]["judging_wall_s"],
        "ideal_s": ideal,
        "ratio": round(wall / ideal, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--questions", type=int, default=80)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--level", type=float, default=0.95)
    ap.add_argument("--position-bias", type=float, default=0.4)
    ap.add_argument("--latency", type=float, default=1.0, help="judge latency (s); 0 skips the timing run")
    ap.add_argument("--eval-batch-size", type=int, default=64)
    a = ap.parse_args()
    out: dict[str, object] = {}
    if a.seeds:
        out["coverage"] = coverage(a.seeds, a.questions, a.rounds, a.level, a.position_bias)
        print(json.dumps(out["coverage"], indent=1), flush=True)
    if a.latency > 0:
        out["timing"] = timing(a.questions, a.latency, a.eval_batch_size)
        print(json.dumps(out["timing"], indent=1), flush=True)


if __name__ == "__main__":
    main()
