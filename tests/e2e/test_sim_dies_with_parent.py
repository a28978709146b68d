"""Issue 10 item 7: after ``kill -9`` of ``evalscope perf`` / ``evalscope eval``, the built-in simulator child
must not keep serving as an orphan, and its ``evalscope-sim-*`` directory must not stay behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from evalscope.sim import SimProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.append(int(d.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes()).replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a PID 1 that does not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def _find_sim_child(parent: int, deadline_s: float) -> int:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for c in _children(parent):
            if "evalscope.sim" in _cmdline(c):
                return c
        time.sleep(0.1)
    raise AssertionError("the built-in simulator child never appeared")


def _gsm8k(root: Path, n: int) -> Path:
    d = root / "gsm8k"
    d.mkdir(parents=True)
    lines = [json.dumps({"question": f"What is {i} plus 2?", "answer": f"#### {i + 2}"}) for i in range(n)]
    (d / "test.jsonl").write_text("\n".join(lines) + "\n")
    (d / "train.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
    return root


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the child")
@pytest.mark.parametrize("command", ["perf", "eval"])
def test_builtin_simulator_dies_with_its_killed_parent(
    tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    env.update({"PYTHONPATH": str(REPO / "src"), "TMPDIR": str(tmp)})
    if command == "perf":
        args = [
            "perf",
            "--no-live",
            "--parallel",
            "2",
            "--duration",
            "120",
            "--outputs-dir",
            str(tmp_path / "o"),
        ]
    else:  # eval starts the simulator from an executor thread: the lifeline pipe alone must do it
        data = _gsm8k(tmp_path / "data", 3000)
        args = ["eval", "--datasets", "gsm8k", "--dataset-dir", str(data), "--eval-batch-size", "1"]
        args += ["--work-dir", str(tmp_path / "w")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalscope", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    sim_pid = None
    try:
        sim_pid = _find_sim_child(proc.pid, 60)
        dirs = list(tmp.glob("evalscope-sim-*"))
        assert len(dirs) == 1, dirs
        time.sleep(1.0)  # the run is under way
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        end = time.monotonic() + 5.0
        while _running(sim_pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert not _running(sim_pid), f"simulator {sim_pid} still serving after its parent was killed"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if sim_pid is not None and _running(sim_pid):
            os.kill(sim_pid, signal.SIGKILL)
    # the next start leaves no stale directory (the orphan removed its own; any left would be removed here)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    with SimProcess():
        assert len(list(tmp.glob("evalscope-sim-*"))) == 1
    assert list(tmp.glob("evalscope-sim-*")) == []
