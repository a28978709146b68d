"""``evalscope arena`` end to end: with no server (the simulator judges and says so), bad input in one line,
and SIGKILL + --resume against a simulator judge process: no judgment whose verdict had arrived is sent again
(counted at the simulator), and the report equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalscope", "arena", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def test_runs_with_no_server(tmp_path: Path) -> None:
    res = _cli(
        "--models",
        "alpha=sim",
        "beta=sim",
        "gamma=sim",
        "--sim-ratings",
        "alpha=1200",
        "beta=1000",
        "gamma=800",
        "--limit",
        "8",
        "--work-dir",
        str(tmp_path),
        "--run-name",
        "demo",
        "--bootstrap",
        "20",
    )
    assert res.returncode == 0, res.stderr
    assert "built-in simulator judges" in res.stderr
    rep = json.loads((tmp_path / "demo" / "arena" / "report.json").read_text())
    assert rep["judge"]["simulated"] is True
    assert rep["judgments"] == {"planned": 48, "done": 48, "missing": 0}
    for row in rep["ratings"]:
        assert set(row) >= {
            "model",
            "rating",
            "ci_low",
            "ci_high",
            "elo",
            "wins",
            "ties",
            "losses",
            "win_rate",
        }
    assert {"consistency", "null_judgments", "matrix"} <= set(rep)
    assert rep["ratings"][0]["model"] == "alpha"
    for m in ("alpha", "beta", "gamma"):  # one answer journal per model
        assert len((tmp_path / "demo" / "arena" / "answers" / f"{m}.jsonl").read_text().splitlines()) == 8


def test_yaml_config_run_task_and_no_secret_saved(tmp_path: Path) -> None:
    from evalscope.run import run_task

    cfg = tmp_path / "arena.yaml"
    cfg.write_text(
        "eval_type: arena\nmode: single\nmodels: ['alpha=sim,key=sk-arena-secret-123', 'beta=sim']\n"
        f"limit: 4\nbootstrap: 10\nwork_dir: {tmp_path}\nrun_name: y\nquiet: true\n"
        "judge_model: my-judge\n"
    )
    rep = run_task(str(cfg))
    assert rep["mode"] == "single" and rep["judge"]["model"] == "my-judge"
    assert {r["model"] for r in rep["ratings"]} == {"alpha", "beta"}
    for f in (tmp_path / "y").rglob("*"):
        if f.is_file():
            assert b"sk-arena-secret-123" not in f.read_bytes(), f
    res = _cli("--config", str(cfg), "--run-name", "y2", "--mode", "pairwise-all")
    assert res.returncode == 0, res.stderr
    rep2 = json.loads((tmp_path / "y2" / "arena" / "report.json").read_text())
    assert rep2["mode"] == "pairwise-all" and rep2["judgments"]["planned"] == 8


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--answers", "nope.jsonl"], "--answers 'nope.jsonl': cannot read"),
        (["--mode", "duel"], "Invalid value for '--mode'"),
        (["--models", "x"], "expected NAME=URL"),
        (["--judge-api-url", "http://127.0.0.1:9"], "need --judge-model"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    res = _cli(*args, "--work-dir", str(tmp_path))
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


def _inputs(d: Path, n_q: int) -> list[str]:
    rng = random.Random(2)
    qs = d / "q.jsonl"
    qs.write_text(
        "".join(json.dumps({"question_id": f"q{i}", "question": f"Q{i}?"}) + "\n" for i in range(n_q))
    )
    files = []
    for m in ("alpha", "beta", "gamma"):
        p = d / f"{m}.jsonl"
        p.write_text(
            "".join(
                json.dumps(
                    {"question_id": f"q{i}", "model": m, "answer": f"{m} {i} " + "w " * rng.randint(5, 50)}
                )
                + "\n"
                for i in range(n_q)
            )
        )
        files.append(str(p))
    return ["--questions", str(qs), "--answers", *files]


def _ids(truth: list[dict[str, Any]], outcome: str | None = None) -> list[str]:
    return [
        str(t["request_id"])
        for t in truth
        if str(t["request_id"]).startswith("arena-") and (outcome is None or t["outcome"] == outcome)
    ]


def _comparable(rep: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rep.items() if k != "run"}


def test_sigkill_then_resume(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimProcess
    from evalscope.sim.judge import JudgeTruth

    n_q = 30  # 3 pairs x 2 orders x 30 = 180 judgments
    inputs = _inputs(tmp_path, n_q)
    cfg = SimConfig(
        policy="judge",
        judge=JudgeTruth(
            ratings={"alpha": 1100, "beta": 1000, "gamma": 900}, position_bias=0.3, null_rate=0.3
        ),
        models=["judge"],
        ttft_ms=60.0,
        itl_ms=0.0,
        truth_max=100_000,
    )
    common = [*inputs, "--judge-model", "judge", "--eval-batch-size", "8", "--bootstrap", "30", "--quiet"]
    with SimProcess(cfg) as sim:
        work = tmp_path / "work"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evalscope",
                "arena",
                *common,
                "--judge-api-url",
                sim.url,
                "--work-dir",
                str(work),
                "--run-name",
                "r1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
            start_new_session=True,
        )
        journal = work / "r1" / "arena" / "judgments.jsonl"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if journal.exists() and journal.read_bytes().count(b"\n") >= 60:
                    break
                if proc.poll() is not None:
                    break
                time.sleep(0.01)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            if proc.stderr:
                proc.stderr.close()
        done = set()
        for line in journal.read_bytes().splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            done.add(e["key"][:16])
        assert 60 <= len(done) < 180
        first = sim.fetch_truth(clear=True)
        res = _cli(*common, "--judge-api-url", sim.url, "--resume", str(work / "r1"))
        assert res.returncode == 0, res.stderr
        second = sim.fetch_truth(clear=True)
        # no judgment journaled before the kill is asked again
        again = {i.split("-")[1] for i in _ids(second)}
        assert not again & done, "a journaled judgment was sent again"
        # an (judgment, attempt) answered twice can only be one of the <= 8 judgments in flight at the kill
        # (answered, or a null's first attempt answered, but not yet journaled)
        answered = _ids(first, "ok") + _ids(second, "ok")
        dup = {i.split("-")[1] for i in answered if answered.count(i) > 1}
        assert not dup & done and len(dup) <= 8
        # reference: an uninterrupted run
        ref = _cli(
            *common, "--judge-api-url", sim.url, "--work-dir", str(tmp_path / "ref"), "--run-name", "ref"
        )
        assert ref.returncode == 0, ref.stderr
    resumed = json.loads((work / "r1" / "arena" / "report.json").read_text())
    reference = json.loads((tmp_path / "ref" / "ref" / "arena" / "report.json").read_text())
    assert resumed["judgments"]["done"] == 180
    assert resumed["null_judgments"]["count"] > 0
    assert _comparable(resumed) == _comparable(reference)


def test_benchmark_script_scaled_down(tmp_path: Path) -> None:
    """CI's version of benchmarks/bench_arena.py: a few seeds, short judge latency, no timing assertion."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_arena.py"
    res = subprocess.run(
        [
            sys.executable,
            str(script),
            "--seeds",
            "3",
            "--questions",
            "12",
            "--rounds",
            "20",
            "--latency",
            "0.05",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=180,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    cov, timing = (json.loads(b) for b in re.findall(r"^\{.*?^\}", res.stdout, re.S | re.M))
    assert cov["seeds"] == 3 and set(cov["coverage"]) == {"beta", "gamma"}
    assert timing["judge_calls"] == 72 and timing["judging_wall_s"] > 0
