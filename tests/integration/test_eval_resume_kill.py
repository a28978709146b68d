"""SIGKILL half-way through a 1,000-sample run, then --resume (D1, D5, D6).

The CLI runs in a subprocess against a simulator child process with some latency. After the kill, the
journal holds K completed samples; the resumed run must send none of them again (checked against the
simulator's truth: the request ids it received), only the rest (those in flight at the kill included), and
its final report must equal that of an uninterrupted run.
"""

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

from evalscope.eval.report import comparable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 1000
BATCH = 16
SHARED_DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def _write_synthetic_gsm8k(root: Path, n: int) -> Path:
    d = root / "gsm8k"
    d.mkdir(parents=True)
    with (d / "test.jsonl").open("w") as f:
        for i in range(n):
            q = f"Ann has {i} pens and buys {i % 7 + 2} more. How many pens now? (case {i})"
            f.write(json.dumps({"question": q, "answer": f"#### {i + i % 7 + 2}"}) + "\n")
    (d / "train.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
    return root


def _data_root(tmp_path: Path) -> Path:
    if (SHARED_DATASETS / "gsm8k" / "test.jsonl").is_file():
        return SHARED_DATASETS
    return _write_synthetic_gsm8k(tmp_path / "data", N)


def _script(data_root: Path, path: Path) -> None:
    from evalscope.eval.benchmarks.gsm8k import GSM8K

    bench = GSM8K(data_root, {})
    rng = random.Random(7)
    rules = []
    for i, s in enumerate(bench.load()[:N]):
        prompt = s.messages[-1]["content"]
        reply = bench.reference_output(s, i) if rng.random() < 0.5 else bench.wrong_output(s, i)
        rules.append({"pattern": re.escape(prompt), "reply": reply})
    path.write_text("\n".join(json.dumps(r) for r in rules) + "\n", encoding="utf-8")


def _cli(url: str, data_root: Path, work: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "evalscope",
        "eval",
        "--model",
        "kill-model",
        "--api-url",
        url,
        "--datasets",
        "gsm8k",
        "--dataset-dir",
        str(data_root),
        "--limit",
        str(N),
        "--eval-batch-size",
        str(BATCH),
        "--work-dir",
        str(work),
        *extra,
    ]


def _sample_keys(truth: list[dict[str, Any]]) -> list[str]:
    """Sample part of each eval request id (``gsm8k/<id>/<repeat>[#attempt]``)."""
    out = []
    for t in truth:
        rid = str(t["request_id"])
        if not rid.startswith("gsm8k/"):
            continue
        out.append(rid.split("#", 1)[0])
    return out


def _journal_keys(path: Path) -> list[str]:
    keys = []
    for line in path.read_bytes().splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        if e.get("status") == "scored":
            keys.append(f"gsm8k/{e['sample_id']}/{e['repeat']}")
    return keys


def test_sigkill_then_resume_sends_nothing_twice_and_matches_uninterrupted(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimProcess

    data_root = _data_root(tmp_path)
    script = tmp_path / "script.jsonl"
    _script(data_root, script)
    sim_cfg = SimConfig(
        policy="scripted",
        script=str(script),
        ttft_ms=40.0,
        itl_ms=0.0,
        tokens_per_chunk=16,
        models=["kill-model"],
        truth_max=1_000_000,
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    with SimProcess(sim_cfg) as sim:
        # 1. interrupted run
        work = tmp_path / "work"
        proc = subprocess.Popen(
            _cli(sim.url, data_root, work, "--run-name", "r1", "--quiet"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        journal = work / "r1" / "journal" / "gsm8k.jsonl"
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                if journal.exists() and journal.read_bytes().count(b"\n") >= N // 2:
                    break
                if proc.poll() is not None:
                    break
                time.sleep(0.01)
            assert proc.poll() is None, (
                f"run ended before the kill: {proc.stderr.read() if proc.stderr else ''}"
            )
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            if proc.stderr:
                proc.stderr.close()
        done_at_kill = set(_journal_keys(journal))
        assert N // 2 <= len(done_at_kill) < N
        first_truth = sim.fetch_truth(clear=True)
        sent_first = _sample_keys(first_truth)
        in_flight = set(sent_first) - done_at_kill
        assert len(in_flight) <= BATCH

        # 2. resume
        res = subprocess.run(
            _cli(sim.url, data_root, work, "--resume", str(work / "r1"), "--quiet"),
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        resumed = _sample_keys(sim.fetch_truth(clear=True))
        assert len(resumed) == len(set(resumed)), "a sample was sent twice in the resumed run"
        assert not set(resumed) & done_at_kill, "a sample completed before the kill was sent again"
        assert len(resumed) == N - len(done_at_kill)
        assert in_flight <= set(resumed)
        print(
            f"\nkill: {len(done_at_kill)} done, {len(in_flight)} in flight at SIGKILL; "
            f"resume sent {len(resumed)} (= {N} - {len(done_at_kill)})"
        )

        # 3. uninterrupted reference run
        ref = subprocess.run(
            _cli(sim.url, data_root, tmp_path / "ref", "--run-name", "ref", "--quiet"),
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert ref.returncode == 0, ref.stderr
    resumed_report = json.loads((work / "r1" / "reports" / "kill-model" / "gsm8k.json").read_text())
    ref_report = json.loads((tmp_path / "ref" / "ref" / "reports" / "kill-model" / "gsm8k.json").read_text())
    assert resumed_report["num_samples"] == N and resumed_report["errored"] == 0
    assert comparable(resumed_report) == comparable(ref_report)
    manifest = json.loads((work / "r1" / "manifest.json").read_text())
    assert manifest["status"] == "completed" and len(manifest["sessions"]) == 2


def test_resume_refuses_a_different_configuration(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimProcess

    data_root = _write_synthetic_gsm8k(tmp_path / "data", 20)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    with SimProcess(SimConfig(policy="choice", ttft_ms=1, itl_ms=0, models=["kill-model"])) as sim:
        work = tmp_path / "w"
        first = subprocess.run(
            _cli(sim.url, data_root, work, "--run-name", "r", "--quiet"),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert first.returncode == 0, first.stderr
        again = subprocess.run(
            _cli(
                sim.url,
                data_root,
                work,
                "--resume",
                str(work / "r"),
                "--generation-config",
                "temperature=0.7",
            ),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert again.returncode == 2
        err = again.stderr.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in again.stderr
        assert "gsm8k.generation" in err[0] and "temperature" in err[0] and "--force" in err[0]
        forced = subprocess.run(
            _cli(
                sim.url,
                data_root,
                work,
                "--resume",
                str(work / "r"),
                "--generation-config",
                "temperature=0.7",
                "--force",
                "--quiet",
            ),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert forced.returncode == 0, forced.stderr
        # different data -> refused as well
        with (data_root / "gsm8k" / "test.jsonl").open("a") as f:
            f.write(json.dumps({"question": "extra?", "answer": "#### 1"}) + "\n")
        changed = subprocess.run(
            _cli(sim.url, data_root, work, "--resume", str(work / "r")),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert changed.returncode == 2 and "data_hash" in changed.stderr
