"""``evalscope eval`` as a user runs it: one clear line + documented exit code per error, secrets never saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CANARY = "sk-canary-7f3a9c2e51d04b8b"


def _gsm8k(root: Path, n: int = 12, bad_line: int | None = None) -> Path:
    d = root / "gsm8k"
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        lines.append(
            json.dumps({"question": f"What is {i} plus 2? (q{i})", "answer": f"{i}+2\n#### {i + 2}"})
        )
    if bad_line is not None:
        lines[bad_line - 1] = '{"question": "broken", "answer": '
    (d / "test.jsonl").write_text("\n".join(lines) + "\n")
    (d / "train.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
    return root


def _run(
    args: list[str], env_extra: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    env["PYTHONPATH"] = str(REPO / "src")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "evalscope", "eval", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        cwd=cwd,
    )


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture
def sim_with_key() -> Iterator[str]:
    from evalscope.sim import SimConfig, SimProcess

    with SimProcess(SimConfig(policy="choice", ttft_ms=1, itl_ms=0, api_key=CANARY, models=["m"])) as sim:
        yield sim.url


def test_quick_start_uses_builtin_simulator(tmp_path: Path) -> None:
    data = _gsm8k(tmp_path / "data")
    res = _run(
        ["--datasets", "gsm8k", "--dataset-dir", str(data), "--limit", "5", "--work-dir", str(tmp_path / "o")]
    )
    assert res.returncode == 0, res.stderr
    assert "built-in simulator" in res.stderr
    assert "gsm8k" in res.stdout and "score %" in res.stdout  # the table on stdout, messages on stderr
    reports = list((tmp_path / "o").glob("*/reports/sim-model/gsm8k.json"))
    assert len(reports) == 1
    rep = json.loads(reports[0].read_text())
    for key in (
        "score",
        "metric",
        "num_samples",
        "subsets",
        "unparsed_rate",
        "truncated_rate",
        "errored",
        "prompt_version",
        "few_shot",
        "generation",
        "dataset_hash",
        "versions",
        "performance",
    ):
        assert key in rep
    assert rep["num_samples"] == 5 and rep["generation"] == {"max_tokens": 2048}
    assert rep["performance"]["latency_s"]["mean"] > 0
    # the run directory is never reused
    res2 = _run(
        [
            "--datasets",
            "gsm8k",
            "--dataset-dir",
            str(data),
            "--limit",
            "2",
            "--work-dir",
            str(tmp_path / "o"),
            "--run-name",
            reports[0].parents[2].name,
            "--quiet",
        ]
    )
    assert res2.returncode == 0, res2.stderr
    assert len(list((tmp_path / "o").iterdir())) == 2


def test_python_m_evalscope_run_and_run_task(tmp_path: Path) -> None:
    data = _gsm8k(tmp_path / "data")
    env = {k: v for k, v in os.environ.items()}
    env["PYTHONPATH"] = str(REPO / "src")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "evalscope.run",
            "--model",
            "sim-model",
            "--datasets",
            "gsm8k",
            "--limit",
            "3",
            "--dataset-dir",
            str(data),
            "--work-dir",
            str(tmp_path / "o"),
            "--eval-type",
            "service",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert res.returncode == 0, res.stderr
    from evalscope import run_task

    out = run_task(
        {
            "datasets": ["gsm8k"],
            "limit": 3,
            "dataset_dir": str(data),
            "work_dir": str(tmp_path / "p"),
            "quiet": True,
        }
    )
    assert out["sim-model"]["gsm8k"]["num_samples"] == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--datasets", "gsm8kk"], "Did you mean: gsm8k"),
        (["--datasets", "gsm8k", "--eval-batch-size", "0"], "--eval-batch-size=0"),
        (["--datasets", "gsm8k", "--generation-config", "max_tokens=lots"], "max_tokens"),
        (["--datasets", "gsm8k", "--dataset-args", "{not json"], "--dataset-args"),
        (["--datasets", "humaneval"], "--allow-code-execution"),
        (["--datasets", "gsm8k", "--resume", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_config_errors_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    data = _gsm8k(tmp_path / "data")
    res = _run([*args, "--dataset-dir", str(data), "--work-dir", str(tmp_path / "o")])
    assert res.returncode == 2, res.stderr
    assert needle in _one_error_line(res)


def test_malformed_dataset_exit_2_with_line(tmp_path: Path) -> None:
    data = _gsm8k(tmp_path / "data", bad_line=3)
    res = _run(["--datasets", "gsm8k", "--dataset-dir", str(data), "--work-dir", str(tmp_path / "o")])
    assert res.returncode == 2
    line = _one_error_line(res)
    assert "line 3" in line and "test.jsonl" in line


def test_missing_data_names_dataset_dir_and_layout(tmp_path: Path) -> None:
    res = _run(
        ["--datasets", "gsm8k", "--work-dir", str(tmp_path / "o")],
        {"EVALSCOPE_CACHE": str(tmp_path / "c"), "EVALSCOPE_OFFLINE": "1"},  # no download: the cache only
    )
    assert res.returncode == 2
    line = _one_error_line(res)
    assert "--dataset-dir" in line and "gsm8k/" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    res2 = _run(["--datasets", "gsm8k", "--dataset-dir", str(empty), "--work-dir", str(tmp_path / "o")])
    assert res2.returncode == 2 and "gsm8k" in _one_error_line(res2)


def test_wrong_key_exit_3(tmp_path: Path, sim_with_key: str) -> None:
    data = _gsm8k(tmp_path / "data")
    res = _run(
        [
            "--model",
            "m",
            "--api-url",
            sim_with_key,
            "--api-key",
            "sk-wrong-key-000",
            "--datasets",
            "gsm8k",
            "--dataset-dir",
            str(data),
            "--work-dir",
            str(tmp_path / "o"),
        ]
    )
    assert res.returncode == 3
    assert "API key" in _one_error_line(res)
    assert "sk-wrong-key-000" not in res.stderr + res.stdout


def test_unreachable_url_exit_3(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    data = _gsm8k(tmp_path / "data")
    res = _run(
        [
            "--model",
            "m",
            "--api-url",
            f"http://127.0.0.1:{port}/v1",
            "--datasets",
            "gsm8k",
            "--dataset-dir",
            str(data),
            "--work-dir",
            str(tmp_path / "o"),
        ]
    )
    assert res.returncode == 3
    line = _one_error_line(res)
    assert f"127.0.0.1:{port}" in line and "--api-url" in line


def test_canary_key_never_saved_or_printed(tmp_path: Path, sim_with_key: str) -> None:
    data = _gsm8k(tmp_path / "data")
    work = tmp_path / "o"
    res = _run(
        [
            "--model",
            "m",
            "--api-url",
            sim_with_key,
            "--datasets",
            "gsm8k",
            "--dataset-dir",
            str(data),
            "--limit",
            "6",
            "--work-dir",
            str(work),
            "--use-cache",
            str(tmp_path / "cache"),
        ],
        {"EVALSCOPE_API_KEY": CANARY},
    )
    assert res.returncode == 0, res.stderr
    res2 = _run(
        [
            "--model",
            "m",
            "--api-url",
            sim_with_key,
            "--api-key",
            CANARY,
            "--datasets",
            "gsm8k",
            "--dataset-dir",
            str(data),
            "--limit",
            "6",
            "--work-dir",
            str(work),
            "--debug",
        ]
    )
    assert res2.returncode == 0, res2.stderr
    assert CANARY not in res.stdout + res.stderr + res2.stdout + res2.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "data" not in p.parts]
    assert len(files) >= 6
    for p in files:
        assert CANARY.encode() not in p.read_bytes(), p
    manifest = json.loads(next(work.glob("*/manifest.json")).read_text())
    assert manifest["status"] == "completed"


def test_use_cache_second_run_sends_nothing(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimProcess

    data = _gsm8k(tmp_path / "data")
    with SimProcess(SimConfig(policy="choice", ttft_ms=1, itl_ms=0, models=["m"])) as sim:
        args = [
            "--model",
            "m",
            "--api-url",
            sim.url,
            "--datasets",
            "gsm8k",
            "--dataset-dir",
            str(data),
            "--work-dir",
            str(tmp_path / "o"),
            "--use-cache",
            str(tmp_path / "cache"),
            "--quiet",
            "--no-test-connection",
        ]
        assert _run(args).returncode == 0
        sim.fetch_truth(clear=True)
        assert _run(args).returncode == 0
        assert sim.fetch_truth() == []
    reports = sorted((tmp_path / "o").glob("*/reports/m/gsm8k.json"))
    a, b = (json.loads(p.read_text()) for p in reports)
    assert a["score"] == b["score"] and b["performance"]["cache_hits"] == 12


def test_general_mcq_user_files_and_resume_from_manifest_only(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimProcess

    folder = tmp_path / "mine"
    folder.mkdir()
    rows = [
        {"question": f"Colour {i}?", "A": "red", "B": "blue", "C": "green", "answer": "ABC"[i % 3]}
        for i in range(9)
    ]
    (folder / "colours_val.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rules = [{"pattern": "Colour", "reply": "Thinking about (B) and (C)...\n\nANSWER: **A**"}]
    with SimProcess(
        SimConfig(policy="scripted", script_rules=rules, ttft_ms=1, itl_ms=0, models=["m"])
    ) as sim:
        dargs = json.dumps({"general_mcq": {"local_path": str(folder)}})
        res = _run(
            [
                "--model",
                "m",
                "--api-url",
                sim.url,
                "--datasets",
                "general_mcq",
                "--dataset-args",
                dargs,
                "--work-dir",
                str(tmp_path / "o"),
                "--run-name",
                "g",
                "--quiet",
            ]
        )
        assert res.returncode == 0, res.stderr
        rep = json.loads((tmp_path / "o" / "g" / "reports" / "m" / "general_mcq.json").read_text())
        assert rep["num_samples"] == 9 and rep["score"] == pytest.approx(1 / 3)
        assert rep["subsets"] == [{"name": "colours", "score": pytest.approx(1 / 3), "num_samples": 9}]
        # --resume alone reuses the saved configuration; nothing is left to send
        sim.fetch_truth(clear=True)
        again = _run(["--resume", str(tmp_path / "o" / "g"), "--quiet", "--no-test-connection"])
        assert again.returncode == 0, again.stderr
        assert sim.fetch_truth() == []
