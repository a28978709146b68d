"""perf and eval write report.html at the end and on Ctrl-C; --no-html turns it off; a failing report
changes neither the run's data nor its exit code."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SRC = Path(__file__).resolve().parents[2] / "src"


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _perf(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalscope", "perf", "--parallel", "2", "--number", "6", "--max-tokens", "8",
         "--outputs-dir", str(out), "--no-live", *extra],
        capture_output=True, text=True, env=_env(), timeout=120,
    )  # fmt: skip


def _only_run(out: Path) -> Path:
    (d,) = [p for p in out.iterdir() if p.is_dir()]
    return d


def test_perf_writes_report_html_unless_no_html(tmp_path: Path) -> None:
    r = _perf(tmp_path / "a")
    assert r.returncode == 0, r.stderr
    html = _only_run(tmp_path / "a") / "report.html"
    assert html.is_file() and html.read_text().startswith("<!DOCTYPE html>")
    r = _perf(tmp_path / "b", "--no-html")
    assert r.returncode == 0, r.stderr
    assert not (_only_run(tmp_path / "b") / "report.html").exists()


def test_perf_writes_report_html_on_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalscope", "perf", "--parallel", "2", "--duration", "60", "--max-tokens", "64",
         "--outputs-dir", str(out), "--no-live", "--drain-timeout", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recs = list(out.glob("*/records.jsonl"))
            if recs and recs[0].stat().st_size > 0:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 130, err
    run = _only_run(out)
    assert (run / "report.html").is_file(), err
    assert '"status":"interrupted"' in (run / "report.html").read_text()


def test_a_failing_report_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import evalscope.report as rep
    from evalscope.perf.runner import run_perf

    def boom(run_dir: Path) -> Path:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(rep, "write_html", boom)
    with caplog.at_level(logging.WARNING, logger="evalscope.report"):
        summary = run_perf(parallel=[2], number=[4], max_tokens=8, outputs_dir=str(tmp_path), live=False)
    assert summary["status"] == "completed"
    run = Path(summary["run_dir"])
    assert (run / "summary.json").is_file() and len((run / "records.jsonl").read_text().splitlines()) == 4
    assert not (run / "report.html").exists()
    assert "renderer exploded" in caplog.text


def test_eval_writes_report_html_unless_no_html(tmp_path: Path, shared_datasets: Path) -> None:
    base = [sys.executable, "-m", "evalscope", "eval", "--datasets", "arc", "--dataset-dir", str(shared_datasets),
            "--limit", "4", "--quiet", "--work-dir"]  # fmt: skip
    r = subprocess.run([*base, str(tmp_path / "a")], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert (_only_run(tmp_path / "a") / "report.html").is_file()
    r = subprocess.run(
        [*base, str(tmp_path / "b"), "--no-html"], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert not (_only_run(tmp_path / "b") / "report.html").exists()


def test_report_distributions_come_from_the_runs_histograms(tmp_path: Path) -> None:
    """perf writes histograms.json; the report draws its CDFs from it, the same ones the records give."""
    import shutil

    from evalscope.report.model import build_model

    r = _perf(tmp_path / "a", "--parallel", "2", "4", "--number", "20", "40", "--max-tokens", "24")
    assert r.returncode == 0, r.stderr
    run = _only_run(tmp_path / "a")
    assert (run / "histograms.json").is_file()
    fast = build_model(run)
    assert fast["cdf_source"] == "histograms.json"
    for broken in (None, b"{not json", b'{"metric_profile": "default", "stages": {"0": {"ttft": 3}}}'):
        slow_dir = tmp_path / f"slow{len(broken or b'')}"
        shutil.copytree(run, slow_dir)
        if broken is None:
            (slow_dir / "histograms.json").unlink()
        else:
            (slow_dir / "histograms.json").write_bytes(broken)
        slow = build_model(slow_dir)
        assert slow["cdf_source"] == "records.jsonl"
        assert set(slow["cdf"]) == set(fast["cdf"]) == {"ttft", "tpot", "itl", "e2e_latency"}
        for name, per in fast["cdf"].items():
            assert set(per) == set(slow["cdf"][name]) and len(per) >= 2
            for stage, pts in per.items():
                flat = [v for pt in pts for v in pt]
                assert flat == pytest.approx([v for pt in slow["cdf"][name][stage] for v in pt], rel=1e-9), name
        assert fast["timeline"] == slow["timeline"] and fast["samples"] == slow["samples"]
