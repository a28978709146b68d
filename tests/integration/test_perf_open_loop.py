"""Open-loop pacing against the simulator (separate process): achieved rate, queue time, coordinated omission."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalscope.perf.runner import run_perf
from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.integration]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_open_loop_100_rps_for_20_s(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=10, itl_ms=2, output_tokens=10)) as sim:
        summary = run_perf(
            url=sim.url, rate=100, duration=20, max_tokens=10, outputs_dir=str(tmp_path), live=False, seed=1
        )
    st = summary["stages"][0]
    cl = st["client"]
    print(json.dumps({k: st[k] for k in ("requests", "queue_time", "duration_s")}), cl)
    assert summary["status"] == "completed"
    # the realised schedule of a Poisson process at 100/s over 20 s has ~2000 ± 45 arrivals
    assert 1850 < st["requests"]["sent"] < 2150
    assert cl["scheduled_rate"] == pytest.approx(100, rel=0.06)
    # T2: the client delivered its schedule: achieved within 1 % of the scheduled rate
    assert cl["achieved_rate"] == pytest.approx(cl["scheduled_rate"], rel=0.01)
    # queue time ~0 while the client keeps up (a loaded CI machine gets a looser bound, and says so)
    assert st["queue_time"]["p50"] < (1.0 if cl["trustworthy"] else 5.0)
    assert st["requests"]["failed"] == 0


@pytest.mark.timeout(60)
def test_constant_rate_within_one_percent_of_target(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=5, itl_ms=1, output_tokens=4)) as sim:
        summary = run_perf(
            url=sim.url,
            rate=50,
            constant_rate=True,
            number=150,
            max_tokens=4,
            outputs_dir=str(tmp_path),
            live=False,
        )
    cl = summary["stages"][0]["client"]
    assert cl["achieved_rate"] == pytest.approx(50, rel=0.01)


@pytest.mark.timeout(60)
def test_coordinated_omission_is_visible(tmp_path: Path) -> None:
    """Server capacity 4 / 0.2 s = 20 req/s under a --parallel 4 cap, offered 50 req/s: queueing shows."""
    with SimProcess(SimConfig(ttft_ms=200, itl_ms=0, output_tokens=1)) as sim:
        summary = run_perf(
            url=sim.url,
            rate=50,
            parallel=4,
            number=60,
            max_tokens=1,
            outputs_dir=str(tmp_path),
            live=False,
            constant_rate=True,
        )
    st = summary["stages"][0]
    e2e = st["e2e_latency"]["mean"]
    assert 195 < e2e < 260  # each request itself is fast...
    assert st["queue_time"]["max"] > 1000  # ...but they waited in the client for a slot
    assert st["latency_from_schedule"]["p90"] > 4 * e2e  # what a user on the schedule experienced
    cl = st["client"]
    assert cl["trustworthy"] is False and "parallel" in cl["reason"]
    assert cl["achieved_rate"] < 25


@pytest.mark.timeout(60)
def test_kill_9_leaves_parseable_records(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=2, itl_ms=1, output_tokens=8)) as sim:
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
                "--number",
                "1000000",
                "--max-tokens",
                "8",
                "--outputs-dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                files = list(tmp_path.glob("*/records.jsonl"))
                if files and files[0].stat().st_size > 20000:
                    break
                time.sleep(0.05)
            time.sleep(1.3)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    data = (run / "records.jsonl").read_bytes()
    lines = data.split(b"\n")
    assert lines[-1] == b""  # only whole lines are ever written
    recs = [json.loads(x) for x in lines if x]
    assert len(recs) > 100 and all(r["status"] == "ok" for r in recs)
    assert json.loads((run / "manifest.json").read_text())["status"] == "running"
