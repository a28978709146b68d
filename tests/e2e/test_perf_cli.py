"""``evalscope perf`` as a user runs it: a subprocess CLI against the simulator in its own process."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.integration]


def run_cli(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 120, cpus: set[int] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    full_env.update({"COLUMNS": "80", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "evalscope", "perf", "--no-live", *args],
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def run_dir(outputs: Path) -> Path:
    dirs = sorted(p for p in outputs.iterdir() if p.is_dir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def load(outputs: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    d = run_dir(outputs)
    summary = json.loads((d / "summary.json").read_text())
    manifest = json.loads((d / "manifest.json").read_text())
    records = [json.loads(line) for line in (d / "records.jsonl").read_text().splitlines() if line]
    return summary, manifest, records


#: Foreign CPU load above which the 2 ms claims are not checked (the skip names the measured figure).
BUSY_LIMIT = 0.25
#: The simulator's own schedule lateness (p99 of chunk sent - due) above which its truth is too coarse.
SIM_LATE_LIMIT_US = 500.0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_accuracy_against_simulator_truth(tmp_path: Path, machine_load: Any) -> None:
    """TTFT 200 ms, ITL 20 ms, 100 tokens, 64 parallel, 640 requests: means within 2 ms of the truth.

    The truth starts at the simulator's kernel receive stamp of each request (SO_TIMESTAMPNS: when the bytes
    reached its TCP stack), not at the client's own ``sent_ns``: the client's send-side delay is part of its
    error and is not subtracted. Only the simulator's own lateness in reading the request (its loop stamp
    minus the kernel stamp) is server time that any client would see.
    """
    cfg = SimConfig(ttft_ms=200, itl_ms=20, output_tokens=100)
    # As in benchmarks/bench_perf_accuracy.py: simulator and client on separate CPUs when there are two, so the
    # figures describe the client, not two processes taking turns on one core.
    allowed = sorted(os.sched_getaffinity(0))
    sim_cpus, cli_cpus = ({allowed[0]}, set(allowed[1:])) if len(allowed) >= 2 else (None, None)
    with SimProcess(cfg, cpus=sim_cpus, loop="asyncio") as sim:
        r = run_cli(
            [
                "--url",
                sim.url,
                "--parallel",
                "64",
                "--number",
                "640",
                "--max-tokens",
                "100",
                "--outputs-dir",
                str(tmp_path),
            ],
            timeout=200,
            cpus=cli_cpus,
        )
        assert r.returncode == 0, r.stderr
        truth = [t for t in sim.fetch_truth() if t["request_id"].isdigit()]
        sim_lag_p99_us = sim.fetch_stats()["lag"]["p99_us"]
    busy, busy_note = machine_load.foreign_share()
    summary, manifest, records = load(tmp_path)
    assert manifest["status"] == "completed"
    st = summary["stages"][0]
    assert st["requests"] == {
        "sent": 640,
        "succeeded": 640,
        "failed": 0,
        "cancelled": 0,
        "error_rate": 0.0,
        "incomplete_at_deadline": 0,
    }
    assert len(records) == 640 and len(truth) == 640
    assert all(t["kernel_arrival_ns"] is not None for t in truth), "simulator gave no kernel receive stamps"
    t_ttft = statistics.mean((t["first_token_ns"] - t["arrival_ns"]) / 1e6 for t in truth)
    t_e2e = statistics.mean((t["end_ns"] - t["arrival_ns"]) / 1e6 for t in truth)
    t_tpot = statistics.mean(
        (t["chunk_ns"][-1] - t["first_token_ns"]) / 1e6 / (t["completion_tokens"] - 1) for t in truth
    )
    tokens = sum(t["completion_tokens"] for t in truth)
    window_s = (max(t["end_ns"] for t in truth) - min(t["arrival_ns"] for t in truth)) / 1e9
    by_id = {t["request_id"]: t for t in truth}
    # Decomposition on one CLOCK_MONOTONIC: the client's send side (kernel receive - client sent), the
    # simulator's lateness reading the request (its loop stamp - kernel stamp), and the client's receive error.
    send = statistics.mean((by_id[str(r["id"])]["kernel_arrival_ns"] - r["sent_ns"]) / 1e6 for r in records)
    sim_late = statistics.mean((t["arrival_ns"] - t["kernel_arrival_ns"]) / 1e6 for t in truth)
    first_err = statistics.mean(
        (r["first_token_ns"] - by_id[str(r["id"])]["first_token_ns"]) / 1e6 for r in records
    )
    last_err = statistics.mean(
        (r["last_token_ns"] - by_id[str(r["id"])]["chunk_ns"][-1]) / 1e6 for r in records
    )
    report = (
        f"ttft {st['ttft']['mean']:.3f} vs {t_ttft:.3f}; tpot {st['tpot']['mean']:.3f} vs {t_tpot:.3f}; "
        f"e2e {st['e2e_latency']['mean']:.3f} vs {t_e2e:.3f}; out tok/s {st['throughput']['output_tokens_per_s']:.1f}"
        f" vs {tokens / window_s:.1f}; client send side {send:.3f} ms; simulator read lateness {sim_late:.3f} ms;"
        f" client receive error first {first_err:.3f} ms, last {last_err:.3f} ms; simulator chunk lag p99"
        f" {sim_lag_p99_us} µs; {busy_note}; client {st['client']}"
    )
    print(report)
    # Exact counts and token throughput hold whatever the machine's load.
    assert abs(st["throughput"]["output_tokens_per_s"] / (tokens / window_s) - 1) < 0.02, report
    # One clock: the kernel receives after the client stamped, the client receives after the server sent.
    assert send >= 0 and sim_late >= 0 and first_err >= 0 and last_err >= 0, report

    def claims() -> None:
        # TTFT and TPOT: within the documented 2 ms. A TTFT's error is the send side plus the first event's
        # receive error; on a quiet 2-core machine at 64 streams they measure about 1.1 ms and 0.1 ms.
        assert send < 1.5, report
        assert abs(st["tpot"]["mean"] - t_tpot) < 2.0, report
        assert first_err < 2.0 and last_err < 2.0, report
        assert abs(st["ttft"]["mean"] - t_ttft - sim_late) < 2.0, report
        # E2E: the send side plus the last event's receive error. The built-in transport stamps at the socket
        # write (send side ~0.005 ms) and in the read callback: measured 1.3 ms even with the machine 88 % busy.
        assert abs(st["e2e_latency"]["mean"] - t_e2e - sim_late) < 2.0, report

    # When the tool says its numbers can be trusted, they must be within the claim, whatever the load.
    if st["client"]["trustworthy"]:
        claims()
    # Whether the claims are checked at all is decided by figures measured outside the tool: the machine's
    # other load, and the simulator's own lateness against its schedule (its truth).
    if busy > BUSY_LIMIT:
        pytest.skip(f"machine busy: {busy_note} (> {BUSY_LIMIT:.0%}); {report}")
    if sim_lag_p99_us is not None and sim_lag_p99_us > SIM_LATE_LIMIT_US:
        pytest.skip(f"simulator late on its own schedule: chunk lag p99 {sim_lag_p99_us} µs; {report}")
    claims()
    assert st["token_source"] == "usage"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_faults_counted_exactly(tmp_path: Path) -> None:
    cfg = SimConfig(
        ttft_ms=5, itl_ms=1, output_tokens=20, error_rate=0.05, drop_rate=0.02, malformed_rate=0.01, seed=7
    )
    with SimProcess(cfg) as sim:
        r = run_cli(
            [
                "--url",
                sim.url,
                "--parallel",
                "16",
                "--number",
                "600",
                "--max-tokens",
                "20",
                "--no-test-connection",
                "--outputs-dir",
                str(tmp_path),
            ]
        )
        assert r.returncode == 0, r.stderr
        stats = sim.fetch_stats()
    summary, _manifest, records = load(tmp_path)
    st = summary["stages"][0]
    faults = stats["faults"]
    injected = faults["http_500"] + faults["drop"] + faults["malformed"]
    assert injected > 0
    assert st["requests"]["failed"] == injected, (st["requests"], faults)
    assert st["requests"]["succeeded"] == 600 - injected
    kinds = {e["kind"]: e["count"] for e in st["errors"]}
    assert kinds.get("http_status") == faults["http_500"]
    assert kinds.get("malformed_stream") == faults["malformed"]
    assert kinds.get("incomplete_stream", 0) == faults["drop"]
    # latency statistics from successes only
    assert st["e2e_latency"]["count"] == st["requests"]["succeeded"]
    assert st["ttft"]["count"] == st["requests"]["succeeded"]
    assert sum(1 for rec in records if rec["status"] == "error") == injected


def test_canary_key_never_leaks(tmp_path: Path) -> None:
    canary = "sk-CANARY-7f3c9a1e5b2d4c6e8f0a"
    env_canary = "sk-ENVCANARY-0a1b2c3d4e5f6a7b"
    for i, (args, env) in enumerate(
        [
            (["--api-key", canary], {}),
            ([], {"EVALSCOPE_API_KEY": env_canary}),
        ]
    ):
        key = canary if i == 0 else env_canary
        out = tmp_path / f"o{i}"
        with SimProcess(SimConfig(ttft_ms=1, itl_ms=1, output_tokens=5, api_key=key, error_rate=0.2)) as sim:
            r = run_cli(
                [
                    "--url",
                    sim.url,
                    "--parallel",
                    "4",
                    "--number",
                    "30",
                    "--max-tokens",
                    "5",
                    "--headers",
                    f"X-Api-Key={key}",
                    "--outputs-dir",
                    str(out),
                    "--save-responses",
                    *args,
                ],
                env=env,
            )
        assert r.returncode == 0, r.stderr
        assert key not in r.stdout and key not in r.stderr
        files = [p for p in out.rglob("*") if p.is_file()]
        assert len(files) >= 3
        for p in files:
            assert key not in p.read_text(errors="replace"), p
        summary, manifest, _ = load(out)
        assert summary["stages"][0]["requests"]["succeeded"] > 0
        assert manifest["config"]["api_key"] in (None, "***")


def test_wrong_key_is_endpoint_error(tmp_path: Path) -> None:
    with SimProcess(SimConfig(api_key="right-key-123")) as sim:
        r = run_cli(["--url", sim.url, "--api-key", "wrong-key-456", "--outputs-dir", str(tmp_path)])
    assert r.returncode == 3, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "wrong-key-456" not in r.stderr + r.stdout


@pytest.mark.timeout(90)
def test_ctrl_c_interrupts_and_keeps_records(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=50, itl_ms=20, output_tokens=50)) as sim:
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
                "100000",
                "--max-tokens",
                "50",
                "--drain-timeout",
                "0.5",
                "--outputs-dir",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                recs = list(tmp_path.glob("*/records.jsonl"))
                if recs and recs[0].stat().st_size > 0:
                    break
                time.sleep(0.1)
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    summary, manifest, records = load(tmp_path)
    assert manifest["status"] == "interrupted" and summary["status"] == "interrupted"
    st = summary["stages"][0]
    assert st["requests"]["sent"] == len(records)
    assert st["requests"]["succeeded"] > 0
    assert all(r["status"] in ("ok", "cancelled") for r in records)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--parallel", "0"], "--parallel"),
        (["--dataset", "sharegtp"], "Did you mean: sharegpt"),
        (["--goodput", "ttft:fast"], "--goodput"),
        (["--metric-profile", "tgi"], "--metric-profile"),
        (["--dataset", "openqa", "--dataset-path", "/nonexistent/file.jsonl"], "not found"),
        (["--extra-args", "{not json"], "--extra-args"),
        (["--url", "ftp://x"], "--url"),
        (["--number", "1", "2", "3", "--parallel", "1", "2"], "--number"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    r = run_cli([*args, "--outputs-dir", str(tmp_path)], timeout=30)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_malformed_dataset_names_line(tmp_path: Path) -> None:
    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "a"}\n{"question": \n')
    r = run_cli(
        ["--dataset", "openqa", "--dataset-path", str(f), "--outputs-dir", str(tmp_path / "o")], timeout=30
    )
    assert r.returncode == 2
    assert f"{f}:2" in r.stderr


def test_refused_endpoint_exit_3(tmp_path: Path) -> None:
    r = run_cli(["--url", "http://127.0.0.1:9", "--outputs-dir", str(tmp_path)], timeout=60)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.timeout(120)
def test_no_url_starts_simulator(tmp_path: Path) -> None:
    r = run_cli(["--parallel", "4", "--number", "8", "--max-tokens", "8", "--outputs-dir", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    assert "built-in simulator" in r.stdout
    summary, _manifest, records = load(tmp_path)
    assert summary["target"]["simulator"]["started"] is True
    pid = summary["target"]["simulator"]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert len(records) == 8
    for line in r.stdout.splitlines():
        assert len(line) <= 80, line


def test_config_file_and_strict(tmp_path: Path) -> None:
    cfg_file = tmp_path / "perf.yaml"
    cfg_file.write_text("parallel: 2\nnumber: 6\nmax-tokens: 4\ngoodput:\n  e2e: 0.001\n")
    with SimProcess(SimConfig(ttft_ms=5, itl_ms=1)) as sim:
        r = run_cli(
            ["--config", str(cfg_file), "--url", sim.url, "--outputs-dir", str(tmp_path / "o"), "--strict"]
        )
    assert r.returncode == 5, (r.stdout, r.stderr)
    assert "goodput" in r.stderr
    summary, _, _ = load(tmp_path / "o")
    assert summary["stages"][0]["requests"]["sent"] == 6
    assert summary["stages"][0]["goodput"]["good"] == 0


def test_max_errors_aborts_exit_4(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=1, output_tokens=4, error_rate=0.5, seed=3)) as sim:
        r = run_cli(
            [
                "--url",
                sim.url,
                "--parallel",
                "2",
                "--number",
                "500",
                "--max-errors",
                "5",
                "--no-test-connection",
                "--outputs-dir",
                str(tmp_path),
            ]
        )
    assert r.returncode == 4, (r.stdout, r.stderr)
    summary, manifest, _ = load(tmp_path)
    assert manifest["status"] == "aborted"
    assert summary["stages"][0]["requests"]["failed"] >= 5
    assert summary["stages"][0]["requests"]["sent"] < 500


@pytest.mark.timeout(90)
def test_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=50, itl_ms=50, output_tokens=200)) as sim:
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
                "100000",
                "--max-tokens",
                "200",
                "--drain-timeout",
                "60",
                "--outputs-dir",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                recs = list(tmp_path.glob("*/records.jsonl"))
                if recs and recs[0].stat().st_size > 0:
                    break
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            time.sleep(0.5)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            quit_s = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert quit_s < 5  # did not wait for the 60 s drain
    assert "Traceback" not in err
    d = run_dir(tmp_path)
    assert json.loads((d / "manifest.json").read_text())["status"] == "interrupted"
    lines = (d / "records.jsonl").read_text().splitlines()
    assert lines and all(json.loads(x)["status"] == "ok" for x in lines)
