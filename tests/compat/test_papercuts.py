"""Small usability fixes: each one a line of output a user reads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from capture_server import CaptureServer
from docs_commands import REPO

from evalscope.cli.suggest import close_options


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "evalscope", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sim_on_a_busy_port_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = _run(["sim", "--port", str(port)], tmp_path)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(port) in lines[0] and "--port" in lines[0], res.stderr


def test_did_you_mean_only_same_kind() -> None:
    opts = ["--stop", "--top-p", "--api-key", "--wandb-api-key", "--parallel", "--stop-token-ids"]
    assert close_options("--paralel", opts) == ["--parallel"]
    assert "--top-p" not in close_options("--stopp", opts)
    assert close_options("--stop_token_ids", opts) == ["--stop-token-ids"]
    assert "--api-key" not in close_options("--wandb-key", opts)
    assert close_options("--swanlab-api-key", ["--api-key"]) == []


def test_wrong_path_shows_the_url_tried_and_its_derivation(tmp_path: Path) -> None:
    with CaptureServer() as srv:
        res = _run(
            ["perf", "--url", f"http://127.0.0.1:{srv.port}/v2/chat", "-n", "1", "--model", "qwen"], tmp_path
        )
    assert res.returncode == 3, res.stderr
    line = res.stderr.strip()
    assert "/v2/chat/v1/chat/completions answered 404" in line
    assert f"derived from --url http://127.0.0.1:{srv.port}/v2/chat + /v1/chat/completions" in line


def test_piped_perf_output_fits_80_columns_and_has_a_legend(tmp_path: Path) -> None:
    res = _run(["perf", "-n", "2", "--no-live", "--outputs-dir", str(tmp_path / "o")], tmp_path)
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "ttft: time to first token" in text
    for abbr in ("ttfo:", "icl:", "from_schedule:"):
        assert abbr in text, abbr
    assert all(len(line) <= 80 for line in res.stdout.splitlines())


def test_cli_did_you_mean_does_not_offer_another_kind(tmp_path: Path) -> None:
    res = _run(["perf", "--stopp", "x"], tmp_path)
    assert res.returncode == 2
    assert "--top-p" not in res.stderr, res.stderr
    res = _run(["perf", "--wandb-key", "x"], tmp_path)
    assert "'--api-key'" not in res.stderr, res.stderr
