"""Errored samples are not silently dropped (issue 11 item 6), and a resumed run's endpoint performance covers
every session (issue 10 item 4)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.integration.test_eval_runner_faults import _cfg, _journal

from evalscope.engine import retry as retry_mod
from evalscope.eval.runner import arun_eval

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_mod, "BACKOFF_SCALE", 0.0)


def _sim_cfg(**kw: Any) -> Any:
    from evalscope.sim import SimConfig

    base: dict[str, Any] = {
        "policy": "scripted",
        "script_rules": [{"pattern": "toy", "reply": "ANSWER: A"}],  # right for i % 4 == 0
        "ttft_ms": 1,
        "itl_ms": 0,
        "models": ["m"],
        "seed": 5,
    }
    base.update(kw)
    return SimConfig(**base)


async def test_both_accuracy_views_and_error_rate(tmp_path: Path) -> None:
    from evalscope.sim import SimServer

    async with SimServer(_sim_cfg(error_rate=0.3)) as sim:
        res = await arun_eval(_cfg(sim.url, tmp_path, max_attempts=1, preflight=False), out=io.StringIO())
    rep = res.report("toy_mcq_runner")
    entries = _journal(res.run_dir)
    scored = [e for e in entries if e["status"] == "scored"]
    errored = [e for e in entries if e["status"] == "errored"]
    right = sum(1 for e in scored if e["score"] == 1.0)
    assert len(scored) + len(errored) == 40 and 0 < len(errored) < 40
    assert rep["errored"] == len(errored) and rep["num_samples"] == len(scored)
    assert rep["score"] == pytest.approx(right / len(scored))  # over answered samples
    assert rep["score_all"] == pytest.approx(right / 40)  # errored ones counted as wrong
    assert rep["error_rate"] == pytest.approx(len(errored) / 40)
    assert res.over_error_rate and res.over_error_rate[0].startswith("toy_mcq_runner ")
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    assert manifest["error_rate_exceeded"] == res.over_error_rate


async def test_no_errors_both_views_equal_and_under_threshold(tmp_path: Path) -> None:
    from evalscope.sim import SimServer

    async with SimServer(_sim_cfg()) as sim:
        res = await arun_eval(_cfg(sim.url, tmp_path, preflight=False), out=io.StringIO())
    rep = res.report("toy_mcq_runner")
    assert rep["score"] == rep["score_all"] == pytest.approx(0.25)
    assert rep["error_rate"] == 0.0 and res.over_error_rate == []


async def test_resume_accumulates_performance_across_sessions(tmp_path: Path) -> None:
    """Session 1 sends 12 requests (batch 8); session 2 resumes with --limit 20 and batch 4 and sends 8 more;
    a third session has nothing to send. The report's performance covers all 20, never '0 requests'."""
    from evalscope.sim import SimServer

    async with SimServer(_sim_cfg()) as sim:
        first = await arun_eval(_cfg(sim.url, tmp_path, limit=12, preflight=False), out=io.StringIO())
        assert first.report("toy_mcq_runner")["performance"]["requests"] == 12
        # (--force: the toy benchmark has no data files, so its data hash covers the --limit'ed samples)
        kw: dict[str, Any] = {"resume": str(first.run_dir), "limit": 20, "preflight": False, "force": True}
        second = await arun_eval(_cfg(sim.url, tmp_path, eval_batch_size=4, **kw), out=io.StringIO())
        third = await arun_eval(_cfg(sim.url, tmp_path, eval_batch_size=2, **kw), out=io.StringIO())
    for res in (second, third):
        perf = res.report("toy_mcq_runner")["performance"]
        assert perf["requests"] == 20 and perf["succeeded"] == 20
        assert perf["requests_sent"] == 20
        assert perf["latency_s"]["mean"] > 0
    perf = third.report("toy_mcq_runner")["performance"]
    assert [s["eval_batch_size"] for s in perf["sessions"]] == [8, 4, 2]
    assert [s["requests"] for s in perf["sessions"]] == [12, 8, 0]
    assert perf["wall_time_s"] == pytest.approx(sum(s["wall_time_s"] for s in perf["sessions"]))


def test_killed_session_wall_time_is_estimated_from_its_journal() -> None:
    from evalscope.eval.report import cumulative_performance

    entries = [
        {"ok": True, "latency_s": 0.5, "ttft_s": 0.1, "completion_tokens": 4, "time": t}
        for t in (100.5, 101.0, 103.0, 200.2)
    ]
    sessions = [
        {"started": 100.0, "resumed": False},  # killed: no counters written
        {"started": 200.0, "resumed": True, "wall_time_s": 1.0, "requests_sent": 2, "eval_batch_size": 4},
    ]
    perf = cumulative_performance(entries, sessions)
    assert perf["sessions"][0] == {
        "resumed": False,
        "eval_batch_size": None,
        "requests": 3,
        "wall_time_s": pytest.approx(3.0),
        "wall_time_estimated": True,
    }
    assert perf["wall_time_s"] == pytest.approx(4.0)
    assert perf["requests"] == 4 and perf["requests_sent"] == 3 + 2


@pytest.mark.timeout(120)
def test_cli_exits_4_over_max_error_rate_and_writes_reports(tmp_path: Path, shared_datasets: Path) -> None:
    import evalscope
    from evalscope.sim import SimProcess

    env = {**os.environ, "PYTHONPATH": str(Path(evalscope.__file__).parents[1])}  # the tree under test
    with SimProcess(_sim_cfg(policy="choice", script_rules=[], error_rate=0.3)) as sim:
        base = [
            sys.executable, "-m", "evalscope", "eval", "--datasets", "arc", "--limit", "30",
            "--dataset-dir", str(shared_datasets), "--api-url", f"{sim.url}/v1", "--model", "m",
            "--max-attempts", "1", "--no-test-connection", "--work-dir", str(tmp_path / "o"),
        ]  # fmt: skip
        r = subprocess.run([*base, "--run-name", "a"], capture_output=True, text=True, env=env, timeout=100)
        assert r.returncode == 4, r.stderr
        assert "--max-error-rate 0.05" in r.stderr and "arc " in r.stderr
        assert "all %" in r.stdout  # the table shows both views
        rep = json.loads(next((tmp_path / "o" / "a" / "reports").glob("*/arc.json")).read_text())
        assert rep["errored"] > 0 and rep["score_all"] < rep["score"]
        r = subprocess.run(
            [*base, "--run-name", "b", "--max-error-rate", "1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=100,
        )
        assert r.returncode == 0, r.stderr
