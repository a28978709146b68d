"""``evalscope perf`` / ``evalscope eval`` with ``--backend vllm`` end to end through a stand-in ``vllm`` that
starts our simulator: the run goes through the normal engine, the server's log is kept in the run directory,
and no server process outlives the command (success, crash at start, Ctrl-C, SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from managed_standin import alive, read_pids, write_standin

pytestmark = [pytest.mark.integration]

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env(tmp_path: Path, mode: str = "ok", sim_args: str = "--ttft-ms 1 --itl-ms 0") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    env.update(
        PYTHONPATH=SRC,
        STANDIN_MODE=mode,
        STANDIN_PIDS=str(tmp_path / "pids"),
        STANDIN_SIM_ARGS=sim_args,
        EVALSCOPE_SERVER_STOP_GRACE="3",
    )
    return env


def _model(tmp_path: Path) -> Path:
    m = tmp_path / "tiny-model"
    m.mkdir(exist_ok=True)
    (m / "config.json").write_text("{}")
    return m


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _perf_cmd(tmp_path: Path, exe: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "evalscope",
        "perf",
        "--model",
        str(_model(tmp_path)),
        "--backend",
        "vllm",
        "--server-bin",
        str(exe),
        "--server-args",
        "--max-model-len 4096",
        "--outputs-dir",
        str(tmp_path / "out"),
        "--no-live",
        "--max-tokens",
        "8",
        *extra,
    ]


@pytest.mark.timeout(180)
def test_perf_through_a_managed_server(tmp_path: Path) -> None:
    exe = write_standin(tmp_path / "bin")
    r = subprocess.run(
        _perf_cmd(tmp_path, exe, "--parallel", "8", "--number", "32"),
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Starting vllm server" in r.stderr and f"serve {tmp_path / 'tiny-model'}" in r.stderr
    summ = json.loads(next((tmp_path / "out").rglob("summary.json")).read_text())
    st = summ["stages"][-1]["requests"]
    assert st["sent"] == 32 and st["succeeded"] == 32
    run_dir = Path(summ["run_dir"])
    assert (run_dir / "server.log").exists()
    info = json.loads((run_dir / "server.json").read_text())
    assert info["backend"] == "vllm" and info["served_model"] == "tiny-model"
    assert info["command"].endswith("--served-model-name tiny-model --max-model-len 4096")
    assert not list((tmp_path / "out").glob("server-vllm-*.log"))  # moved into the run directory
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["target"]["model"] == "tiny-model"
    assert _gone(read_pids(tmp_path / "pids"))


@pytest.mark.timeout(240)
def test_eval_through_a_managed_server_and_resume(tmp_path: Path, shared_datasets: Path) -> None:
    exe = write_standin(tmp_path / "bin")
    env = _env(tmp_path, sim_args="--ttft-ms 1 --itl-ms 0 --policy choice")
    base = [
        sys.executable,
        "-m",
        "evalscope",
        "eval",
        "--model",
        str(_model(tmp_path)),
        "--backend",
        "vllm",
        "--server-bin",
        str(exe),
        "--datasets",
        "arc",
        "--limit",
        "4",
        "--dataset-dir",
        str(shared_datasets),
        "--work-dir",
        str(tmp_path / "out"),
        "--no-html",
    ]
    r = subprocess.run(base, env=env, capture_output=True, text=True, timeout=170)
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = next(p.parent for p in (tmp_path / "out").rglob("manifest.json"))
    rep = json.loads((run_dir / "reports" / "tiny-model" / "arc.json").read_text())
    assert rep["num_samples"] == 4 and rep["errored"] == 0
    assert (run_dir / "server.log").exists() and (run_dir / "journal" / "arc.jsonl").exists()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["backend"] == "vllm" and manifest["config"]["api_url"] is None
    assert manifest["endpoint"] == f"managed:vllm:{tmp_path / 'tiny-model'}"  # no port: resume matches
    assert _gone(read_pids(tmp_path / "pids"))
    # --resume starts the server again; nothing is left to send, and the fingerprint (no port) matches
    r2 = subprocess.run(
        [sys.executable, "-m", "evalscope", "eval", "--resume", str(run_dir), "--no-html"],
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "Starting vllm server" in r2.stderr
    assert (run_dir / "server-2.log").exists()
    assert _gone(read_pids(tmp_path / "pids"))


@pytest.mark.parametrize(
    ("cmd", "words"),
    [
        (["perf", "--url", "http://127.0.0.1:9/v1"], "--url and --backend vllm are mutually exclusive"),
        (
            ["eval", "--api-url", "http://127.0.0.1:9/v1", "--datasets", "arc"],
            "--api-url and --backend vllm are mutually exclusive",
        ),
    ],
)
def test_url_with_a_managed_backend_is_refused(tmp_path: Path, cmd: list[str], words: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "evalscope", *cmd, "--model", str(tmp_path), "--backend", "vllm"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert words in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_perf_backend_transformers_is_refused(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "evalscope", "perf", "--model", str(tmp_path), "--backend", "transformers"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--backend vllm" in r.stderr and "Traceback" not in r.stderr


def test_missing_server_is_exit_2_one_line(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env["PATH"] = str(tmp_path / "nothing") + os.pathsep + "/usr/bin:/bin"
    env.pop("EVALSCOPE_VLLM_BIN", None)
    r = subprocess.run(
        [sys.executable, "-m", "evalscope", "perf", "--model", str(tmp_path), "--backend", "vllm", "--no-live"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "`vllm` was not found on PATH" in lines[0] and "pip install vllm" in lines[0]


@pytest.mark.timeout(120)
def test_crash_at_start_is_exit_3_with_the_log_tail(tmp_path: Path) -> None:
    exe = write_standin(tmp_path / "bin")
    t0 = time.monotonic()
    r = subprocess.run(
        _perf_cmd(tmp_path, exe, "--server-timeout", "300"),
        env=_env(tmp_path, mode="crash"),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert time.monotonic() - t0 < 60
    assert r.returncode == 3, r.stderr
    assert "exited with code 3 during start-up" in r.stderr
    assert "simulated start-up failure (out of memory)" in r.stderr
    assert "Traceback" not in r.stderr
    assert list((tmp_path / "out").glob("server-vllm-*.log"))  # no run directory: the log stays, named


def _wait_file(path: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear")


def _wait_text(proc: subprocess.Popen[str], logfile: Path, text: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in logfile.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {logfile.read_text()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not seen in {logfile}: {logfile.read_text()[-2000:]}")


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("command", "sig", "mode"),
    [
        ("perf", signal.SIGINT, "ignore-term"),
        ("eval", signal.SIGINT, "ok"),
        ("eval", signal.SIGTERM, "ignore-term"),
    ],
)
def test_interrupt_mid_run_leaves_no_server(
    tmp_path: Path, shared_datasets: Path, command: str, sig: int, mode: str
) -> None:
    exe = write_standin(tmp_path / "bin")
    slow = "--ttft-ms 200 --itl-ms 200 --output-tokens 50 --policy choice"
    if command == "perf":
        cmd = _perf_cmd(tmp_path, exe, "--parallel", "2", "--number", "1000", "--drain-timeout", "2")
    else:
        cmd = [
            sys.executable,
            "-m",
            "evalscope",
            "eval",
            "--model",
            str(_model(tmp_path)),
            "--backend",
            "vllm",
            "--server-bin",
            str(exe),
            "--datasets",
            "arc",
            "--limit",
            "200",
            "--eval-batch-size",
            "2",
            "--drain-timeout",
            "2",
            "--dataset-dir",
            str(shared_datasets),
            "--work-dir",
            str(tmp_path / "out"),
            "--no-html",
        ]
    errlog = tmp_path / "stderr.log"
    with errlog.open("w") as err:
        proc = subprocess.Popen(
            cmd, env=_env(tmp_path, mode=mode, sim_args=slow), stdout=subprocess.DEVNULL, stderr=err, text=True
        )
        try:
            _wait_text(proc, errlog, "server ready", 120)
            time.sleep(1.5)  # requests in flight
            pids = read_pids(tmp_path / "pids")
            assert pids and all(alive(p) for p in pids)
            proc.send_signal(sig)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert rc == 130, errlog.read_text()[-2000:]
    assert _gone(pids, 10.0), errlog.read_text()[-2000:]
    assert list((tmp_path / "out").rglob("server.log"))  # kept in the run directory


@pytest.mark.timeout(120)
def test_ctrl_c_during_start_up_leaves_no_server(tmp_path: Path) -> None:
    exe = write_standin(tmp_path / "bin")
    errlog = tmp_path / "stderr.log"
    with errlog.open("w") as err:
        proc = subprocess.Popen(
            _perf_cmd(tmp_path, exe), env=_env(tmp_path, mode="slow:60"), stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            _wait_text(proc, errlog, "Starting vllm server (pid ", 60)  # type: ignore[arg-type]
            text = errlog.read_text()
            pid = int(text.split("Starting vllm server (pid ", 1)[1].split(")", 1)[0])
            assert alive(pid)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert rc == 130, errlog.read_text()
    assert time.monotonic() - t0 < 20
    assert _gone([pid], 10.0)


def test_dry_run_starts_no_server(tmp_path: Path, shared_datasets: Path) -> None:
    exe = write_standin(tmp_path / "bin")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "evalscope",
            "eval",
            "--model",
            str(_model(tmp_path)),
            "--backend",
            "vllm",
            "--server-bin",
            str(exe),
            "--datasets",
            "arc",
            "--limit",
            "2",
            "--dataset-dir",
            str(shared_datasets),
            "--work-dir",
            str(tmp_path / "out"),
            "--dry-run",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "the managed vllm server (not started)" in r.stderr
    assert not (tmp_path / "pids").exists() and "Starting" not in r.stderr
