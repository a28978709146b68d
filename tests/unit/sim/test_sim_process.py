"""SimProcess lifecycle (no leftover process), the CLI command and config merging."""

from __future__ import annotations

import os
import urllib.request

import orjson
import pytest
from click.testing import CliRunner

from evalscope.cli.sim import build_config, sim
from evalscope.sim import SimConfig, SimProcess

pytestmark = pytest.mark.timeout(60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_sim_process_start_stop_and_truth(loop: str) -> None:
    cfg = SimConfig(ttft_ms=1.0, itl_ms=1.0, models=["m-a"], seed=4)
    with SimProcess(cfg, loop=loop) as proc:
        pid = proc.pid
        assert _alive(pid)
        body = orjson.dumps(
            {"model": "m-a", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        )
        req = urllib.request.Request(
            f"{proc.url}/v1/chat/completions", data=body, headers={"X-Request-Id": "p1"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert orjson.loads(resp.read())["usage"]["completion_tokens"] == 3
        truth = proc.fetch_truth()
        assert [t["request_id"] for t in truth] == ["p1"]
        assert proc.fetch_stats()["requests"] == 1
    assert proc.returncode == 0  # SIGTERM stops it cleanly
    assert not _alive(pid)


def test_sim_process_bad_config_fails_fast() -> None:
    proc = SimProcess(SimConfig())
    proc.cfg = SimConfig.model_construct(ttft_ms=-1.0)  # bypass validation: the child must reject it
    with pytest.raises(RuntimeError, match="simulator exited"):
        proc.start()
    assert proc._proc is None


def test_build_config_flags_override_json() -> None:
    cfg = build_config('{"ttft_ms": 7, "itl_ms": 3, "models": ["a"]}', {"itl_ms": 4.0, "models": ("b", "c")})
    assert (cfg.ttft_ms, cfg.itl_ms, cfg.models) == (7.0, 4.0, ["b", "c"])
    assert build_config(None, {"seed": None, "models": ()}) == SimConfig()


def test_cli_help_lists_every_knob() -> None:
    out = CliRunner().invoke(sim, ["--help"]).output
    for flag in (
        "--host", "--port", "--ttft-ms", "--itl-ms", "--ttft-per-token-ms", "--jitter", "--output-tokens",
        "--output-dist", "--tokens-per-chunk", "--reasoning-tokens", "--policy", "--script", "--error-rate",
        "--rate-429", "--retry-after", "--drop-rate", "--malformed-rate", "--stall-rate", "--no-done-rate",
        "--error-event-rate", "--seed", "--api-key", "--model", "--emit-timestamps", "--config-json", "--port-file",
    ):  # fmt: skip
        assert flag in out, flag


def test_cli_rejects_bad_values() -> None:
    result = CliRunner().invoke(sim, ["--error-rate", "0.7", "--drop-rate", "0.7"])
    assert result.exit_code == 2 and "sum to <= 1" in result.output


def test_cli_ready_line_and_sigint() -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "evalscope.sim", "--port", "0", "--model", "a", "--model", "b"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("evalscope sim ready: http://127.0.0.1:")
        url = line.split(": ", 1)[1].strip()
        with urllib.request.urlopen(f"{url}/v1/models", timeout=10) as resp:
            assert [m["id"] for m in orjson.loads(resp.read())["data"]] == ["a", "b"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_cli_bad_script_is_usage_error(tmp_path: os.PathLike[str]) -> None:
    result = CliRunner().invoke(sim, ["--policy", "scripted", "--script", f"{tmp_path}/missing.json"])
    assert result.exit_code == 2 and "invalid simulator config" in result.output
    result = CliRunner().invoke(sim, ["--config-json", '{"script_rules": [{"pattern": "(", "reply": "x"}]}'])
    assert result.exit_code == 2 and "invalid regex" in result.output
