"""Every command in README.md and docs/*.md runs, adapted only as docs_commands.py's allow-list says.

The commands run against one simulator (``evalscope sim`` serving the model names the docs use) with the
documented data folder; commands that need what CI lacks are skipped with the reason. Docs cannot rot again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from docs_commands import REPO, DocCommand, adapt, extract, find_data_dir, skip_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMMANDS = extract()
DOC_MODELS = ("qwen", "qwen2.5-7b", "sim-model")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("EVALSCOPE_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    return env


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("docsim")
    port_file = d / "port"
    args = [sys.executable, "-m", "evalscope", "sim", "--port", "0", "--port-file", str(port_file)]
    args += ["--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "8", "--policy", "choice"]
    for m in DOC_MODELS:
        args += ["--model", m]
    proc = subprocess.Popen(
        args, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.05)
        yield f"127.0.0.1:{port_file.read_text().strip()}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docs_cwd")


def _missing_benchmark_data(argv: list[str], data: Path) -> list[str]:
    """Benchmarks named by --datasets whose folder the data directory lacks (skipped, not failed)."""
    from evalscope.eval.benchmarks.base import BENCHMARKS
    from evalscope.eval.runner import _ensure_registered

    names: list[str] = []
    if "--datasets" in argv:
        for tok in argv[argv.index("--datasets") + 1 :]:
            if tok.startswith("-"):
                break
            names.append(tok)
    _ensure_registered(names)
    return [n for n in names if (sub := BENCHMARKS.get(n).data_subdir) and not (data / sub).exists()]


def test_docs_have_commands() -> None:
    files = {c.source.split(":")[0] for c in COMMANDS}
    assert {"README.md", "perf.md", "eval.md", "cli.md"} <= files, files


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command_runs(cmd: DocCommand, sim: str, workdir: Path) -> None:
    why = skip_reason(cmd)
    if why:
        pytest.skip(f"{cmd.text!r}: {why}")
    data = find_data_dir()
    is_eval = " eval " in f" {cmd.text} " or "evalscope.run" in cmd.text
    if is_eval and data is None:
        pytest.skip("real benchmark data not found at ../shared/datasets (or $EVALSCOPE_SHARED_DATASETS)")
    argv = adapt(cmd, sim, data, workdir)
    if is_eval and data is not None:
        missing = _missing_benchmark_data(argv, data)
        if missing:
            pytest.skip(f"no data for {missing} in {data}")
    res = subprocess.run(
        [sys.executable, *argv], cwd=workdir, env=_env(), capture_output=True, text=True, timeout=240
    )
    assert res.returncode == 0, f"{cmd.source}: {cmd.text}\nran: {argv}\n{res.stderr[-2000:]}"
