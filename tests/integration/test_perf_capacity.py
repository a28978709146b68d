"""Sweeps, SLA searches, repeats, compare and resume against the simulator's capacity model (short probes).

The simulator here runs 4 sequences at once, 50 ms to the first token, 5 ms per token, 10 tokens: a slot
is held S = 0.05 + 9 * 0.005 = 0.095 s, so capacity is 4 / 0.095 = 42.1 req/s (docs/capacity.md). Closed
loop with 4 < P <= 8 streams: sequences run in waves of 4, and (P - 4) / P of the requests wait one whole S
(TTFT 145 ms); at P = 9 one in nine waits 2 S (240 ms), so p90 TTFT <= 155 holds up to P = 8.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from evalscope.cli import cli
from evalscope.perf.runner import run_perf
from evalscope.sim import SimConfig, SimProcess
from evalscope.sim.capacity import capacity_rps

pytestmark = [pytest.mark.integration]

SIM = {"max_batch": 4, "ttft_ms": 50.0, "itl_ms": 5.0, "output_tokens": 10}
CAPACITY = capacity_rps(SimConfig(**SIM), 10)


def _kw(tmp_path: Path, url: str) -> dict[str, Any]:
    return {"url": url, "max_tokens": 10, "outputs_dir": str(tmp_path), "live": False, "sleep_interval": 0}


@pytest.mark.timeout(120)
def test_sweep_finds_the_plateau_and_the_knee(tmp_path: Path) -> None:
    with SimProcess(SimConfig(**SIM)) as sim:
        s = run_perf(sweep=3, number=80, sweep_parallel=16, **_kw(tmp_path, sim.url))
    sw = s["sweep"]
    assert s["status"] == "completed" and sw["status"] == "completed"
    assert [p["kind"] for p in sw["points"]] == ["synchronous", "throughput", "rate", "rate", "rate"]
    assert CAPACITY is not None and sw["plateau_rps"] == pytest.approx(CAPACITY, rel=0.1)
    rates = [p["rate"] for p in sw["points"][2:]]
    assert sw["synchronous_rps"] < rates[0] < rates[1] < rates[2] < sw["plateau_rps"]
    assert sw["knee_rate"] is not None and sw["max_sustainable_rate"] is not None
    assert len(s["stages"]) == 5


@pytest.mark.timeout(120)
def test_sla_parallel_returns_the_largest_passing_value(tmp_path: Path) -> None:
    with SimProcess(SimConfig(**SIM)) as sim:
        s = run_perf(
            sla_auto_tune=True,
            sla_variable="parallel",
            sla_params='[{"p90_ttft": "<=155"}]',
            sla_min_requests=40,
            sla_upper_bound=64,
            **_kw(tmp_path, sim.url),
        )
    sla = s["sla"]
    assert sla["status"] == "completed" and sla["mode"] == "constraint"
    # exact model: p90 145 ms at 8, 240 ms at 9 (the client's own overhead can only add)
    assert 6 <= sla["largest_met"] <= 8
    assert sla["smallest_failed"] == sla["largest_met"] + 1
    values = [p["value"] for p in sla["probes"]]
    assert values == sorted(values) and {1, 2, 4, 8} <= set(values)
    for p in sla["probes"]:
        assert p["met"] == (p["value"] <= sla["largest_met"])
        assert p["metrics"]["p90_ttft"]["mean"] is not None
    # each probe left its warm-up (one round: P requests) out of its metrics
    probes = [orjson.loads(x) for x in (Path(s["run_dir"]) / "probes.jsonl").read_bytes().splitlines()]
    assert all(p["measured"]["warmup_excluded"] == p["req"][0] for p in probes)


@pytest.mark.timeout(150)
def test_sla_rate_and_an_oversaturated_probe_is_cut(tmp_path: Path) -> None:
    with SimProcess(SimConfig(**SIM)) as sim:
        s = run_perf(
            sla_auto_tune=True,
            sla_variable="rate",
            sla_params='[{"p90_ttft": "<=200"}]',
            sla_min_requests=60,
            sla_resolution=0.1,
            **_kw(tmp_path, sim.url),
        )
        sla = s["sla"]
        assert sla["status"] == "completed"
        assert sla["largest_met"] is not None and CAPACITY is not None
        # a 3-second probe cannot see a few percent of overload (the queue grows too slowly): near capacity
        assert 0.5 * CAPACITY < sla["largest_met"] < 1.1 * CAPACITY
        assert sla["smallest_failed"] < 2.2 * CAPACITY
        # 3x capacity for a probe meant to last 20 s: the watch cuts it within ~10 s
        t = time.monotonic()
        cut = run_perf(
            sla_auto_tune=True,
            sla_variable="rate",
            sla_params='[{"p90_ttft": "<=200"}]',
            sla_min_requests=2400,
            sla_lower_bound=120,
            sla_upper_bound=120,
            **_kw(tmp_path, sim.url),
        )
        took = time.monotonic() - t
    (probe,) = cut["sla"]["probes"]
    assert probe["saturated"] and not probe["met"]
    assert cut["stages"][-1]["stopped_early"]
    assert took < 18


@pytest.mark.timeout(120)
def test_repeats_and_compare(tmp_path: Path) -> None:
    runs = []
    for ttft in (20.0, 40.0):
        with SimProcess(SimConfig(ttft_ms=ttft, itl_ms=2, output_tokens=5)) as sim:
            s = run_perf(repeats=3, number=20, parallel=[2], **{**_kw(tmp_path, sim.url), "max_tokens": 5})
        (rep,) = s["repeats"]
        assert rep["stages"] == [0, 1, 2] and rep["metrics"]["mean_ttft"]["n"] == 3
        assert rep["metrics"]["mean_ttft"]["ci95"] is not None
        runs.append(s["run_dir"])
    res = CliRunner().invoke(cli, ["perf", "compare", runs[0], runs[1]])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.strip().startswith("mean_ttft"))
    assert "beyond" in line  # 20 ms more TTFT is far outside the noise of 3 repeats


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


@pytest.mark.timeout(180)
def test_sla_search_resumes_after_a_crash_without_rerunning_probes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with SimProcess(SimConfig(**SIM)) as sim:
        args = [
            sys.executable,
            "-m",
            "evalscope",
            "perf",
            "--url",
            sim.url,
            "--sla-auto-tune",
            "--sla-variable",
            "parallel",
            "--sla-params",
            '[{"p90_ttft": "<=155"}]',
            "--sla-min-requests",
            "40",
            "--sla-upper-bound",
            "64",
            "--max-tokens",
            "10",
            "--sleep-interval",
            "0",
            "--no-live",
            "--outputs-dir",
            str(tmp_path),
            "--name",
            "crash",
            "--no-timestamp",
        ]
        proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
        probes = tmp_path / "crash" / "probes.jsonl"
        try:
            deadline = time.monotonic() + 90
            while _lines(probes) < 3 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)  # a crash: no summary, no cleanup
        finally:
            proc.wait(10)
        before = _lines(probes)
        assert before >= 3
        first = [orjson.loads(x)["req"] for x in probes.read_bytes().splitlines()]
        s = run_perf(resume=str(tmp_path / "crash"), url=sim.url, live=False)
    assert s["status"] == "completed" and s["run_dir"] == str(tmp_path / "crash")
    assert s["resumed"]["stages_reused"] == before
    sla = s["sla"]
    assert 6 <= sla["largest_met"] <= 8 and sla["smallest_failed"] == sla["largest_met"] + 1
    after = [orjson.loads(x)["req"] for x in probes.read_bytes().splitlines()]
    assert after[: len(first)] == first
    values = [p["value"] for p in sla["probes"]]
    assert len(values) == len(set(values))  # no probe ran twice
    assert len(s["stages"]) == len(after)
