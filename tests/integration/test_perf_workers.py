"""``--workers N``: the same seeded load through 1 and N worker processes gives the same requests and results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from evalscope.perf.runner import run_perf
from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.integration]

LOAD: dict[str, Any] = {
    "number": 400,
    "max_tokens": 32,
    "min_prompt_length": 10,
    "max_prompt_length": 200,
    "seed": 7,
    "warmup": 8,
    "live": False,
}


def records(run_dir: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(run_dir, "records.jsonl").read_text().splitlines() if line]


def assert_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 5
    for pid in pids:
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, f"worker {pid} still running"
            time.sleep(0.05)


def wait_for_records(outputs: Path, timeout: float = 90) -> None:
    """Until the run is measuring: its records.jsonl has lines (workers started, signals installed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(outputs.glob("*/records.jsonl"))
        if files and files[0].stat().st_size > 0:
            return
        time.sleep(0.1)
    raise AssertionError("the run did not start writing records")


def compare(one: dict[str, Any], many: dict[str, Any], workers: int) -> None:
    s1, sn = one["stages"][0], many["stages"][0]
    assert one["status"] == many["status"] == "completed"
    # identical requests: counts and token totals are exact
    assert s1["requests"] == sn["requests"]
    assert s1["tokens"]["prompt_total"] == sn["tokens"]["prompt_total"]
    assert s1["tokens"]["completion_total"] == sn["tokens"]["completion_total"]
    assert sn["client"]["workers"] == workers
    assert sum(sn["client"]["worker_requests"]) == sn["requests"]["sent"]
    # latency within noise (a loaded 2-core CI machine: loose bounds)
    for metric, tol in (("ttft", 15.0), ("e2e_latency", 25.0)):
        a, b = s1[metric]["p50"], sn[metric]["p50"]
        assert abs(a - b) < tol, (metric, a, b)
        assert sn[metric]["count"] == s1[metric]["count"]
    # every request once, each with its worker id, the same prompt per request id
    r1, rn = records(one["run_dir"]), records(many["run_dir"])
    ids = [r["id"] for r in rn if not r.get("warmup")]
    assert sorted(ids) == list(range(LOAD["number"]))
    assert {r["worker"] for r in rn} == set(range(workers))
    assert len([r for r in rn if r.get("warmup")]) == LOAD["warmup"]
    p1 = {r["id"]: r["prompt_tokens"] for r in r1}
    pn = {r["id"]: r["prompt_tokens"] for r in rn}
    assert p1 == pn
    assert_gone(many["workers"]["pids"])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_one_vs_four_workers_closed_loop(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=20, itl_ms=2, output_tokens=32)) as sim:
        one = run_perf(url=sim.url, parallel=16, outputs_dir=str(tmp_path / "1"), **LOAD)
        four = run_perf(url=sim.url, parallel=16, outputs_dir=str(tmp_path / "4"), workers=4, **LOAD)
    compare(one, four, 4)
    cl = four["stages"][0]["client"]
    assert len(cl["worker_cpu_percent"]) == 4 and cl["backend"] == "processes"
    assert four["workers"]["count"] == 4
    # slots split evenly, indices from a shared counter: no worker idles while others have work
    assert min(cl["worker_requests"]) > 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_one_vs_three_workers_open_loop(tmp_path: Path) -> None:
    load = {**LOAD, "number": 300}
    with SimProcess(SimConfig(ttft_ms=10, itl_ms=1, output_tokens=32)) as sim:
        one = run_perf(url=sim.url, rate=100, outputs_dir=str(tmp_path / "1"), **load)
        three = run_perf(url=sim.url, rate=100, outputs_dir=str(tmp_path / "3"), workers=3, **load)
    s1, s3 = one["stages"][0], three["stages"][0]
    assert s1["requests"] == s3["requests"]
    assert s1["tokens"] == s3["tokens"]
    # the same seeded arrival times, handed out i % 3
    assert s3["client"]["scheduled_rate"] == pytest.approx(s1["client"]["scheduled_rate"], rel=1e-9)
    assert s3["client"]["worker_requests"] == [100, 100, 100]
    assert s3["client"]["achieved_rate"] == pytest.approx(s3["client"]["scheduled_rate"], rel=0.05)
    assert_gone(three["workers"]["pids"])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ctrl_c_drains_workers_and_leaves_no_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    with SimProcess(SimConfig(ttft_ms=20, itl_ms=5, output_tokens=40)) as sim:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evalscope",
                "perf",
                "--no-live",
                "--url",
                sim.url,
                "--parallel",
                "8",
                "--duration",
                "60",
                "--workers",
                "2",
                "--max-tokens",
                "40",
                "--outputs-dir",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            workers: list[psutil.Process] = []
            children: list[psutil.Process] = []
            while time.monotonic() < deadline and len(workers) < 2:
                time.sleep(0.2)
                children = psutil.Process(proc.pid).children()
                workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
            assert len(workers) == 2
            wait_for_records(tmp_path)
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    st = summary["stages"][0]
    assert st["requests"]["sent"] > 0
    recs = records(str(run))
    assert len(recs) == st["requests"]["sent"]
    assert {r["worker"] for r in recs} == {0, 1}
    assert_gone([c.pid for c in children])  # the workers and multiprocessing's resource tracker


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_second_ctrl_c_kills_workers_with_records_flushed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    # long streams: the drain after the first Ctrl-C would take ~10 s; the second one ends it at once
    with SimProcess(SimConfig(ttft_ms=10, itl_ms=100, output_tokens=100)) as sim:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evalscope",
                "perf",
                "--no-live",
                "--url",
                sim.url,
                "--parallel",
                "8",
                "--duration",
                "60",
                "--workers",
                "2",
                "--max-tokens",
                "100",
                "--outputs-dir",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            children: list[psutil.Process] = []
            while time.monotonic() < deadline and len(children) < 3:
                time.sleep(0.2)
                children = psutil.Process(proc.pid).children()
            wait_for_records(tmp_path)  # some streams finished and were sent to the coordinator
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    recs = records(str(run))  # every line parses
    assert len(recs) == manifest["records_written"] > 0
    assert_gone([c.pid for c in children])
