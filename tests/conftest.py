"""Shared test fixtures: the real datasets folder (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
if not SHARED_DATASETS.is_dir():  # a git worktree under /work/wt/<name>: the data sits beside the main checkout
    SHARED_DATASETS = Path(os.environ.get("EVALSCOPE_SHARED_DATASETS", "/work/shared/datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real benchmark data not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


class MachineLoad:
    """CPU time used on this machine by processes other than this test's, sampled from /proc/stat.

    Timing tests gate their tight assertions on this figure, measured outside the tool under test: the tool's
    own "trustworthy" verdict must not decide whether the test that checks it runs. ``own`` counts this
    process and its waited-for children (the simulator and CLI subprocesses), so what is left is foreign load.
    """

    def __init__(self) -> None:
        self._t0 = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        import os
        import time

        with open("/proc/stat", encoding="ascii") as f:
            cpu = [int(x) for x in f.readline().split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(cpu[:3]) + sum(cpu[5:8])) / tick  # user nice system irq softirq steal (not idle/iowait)
        t = os.times()
        return time.monotonic(), busy, t.user + t.system + t.children_user + t.children_system

    def foreign_share(self) -> tuple[float, str]:
        """(share of all CPUs busy with other processes since the start, a one-line description)."""
        import os

        w1, b1, o1 = self._sample()
        w0, b0, o0 = self._t0
        ncpu = os.cpu_count() or 1
        wall = max(1e-9, w1 - w0)
        foreign = max(0.0, (b1 - b0) - (o1 - o0)) / (wall * ncpu)
        with open("/proc/loadavg", encoding="ascii") as f:
            load = " ".join(f.read().split()[:3])
        return foreign, f"other processes kept {foreign:.0%} of {ncpu} CPUs busy over {wall:.1f} s (loadavg {load})"


@pytest.fixture
def machine_load() -> MachineLoad:
    return MachineLoad()


@pytest.fixture(scope="session", autouse=True)
def _kernel_rx_timestamps_on() -> object:
    """Keep the kernel's receive timestamping switched on for the whole session.

    Linux turns packet timestamping on only while some socket asks for it, and switches it on and off lazily
    (deferred work). Each simulator enables it on its own listener when it starts; in a suite that starts and
    stops many simulators, the first requests after a start can arrive before the switch takes effect and go
    unstamped. One socket that asks for stamps for the whole session keeps the switch on.
    """
    import socket
    import time

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35), 1)
        time.sleep(0.05)  # let the deferred switch take effect
    except OSError:
        pass
    yield s
    s.close()


@pytest.fixture(params=["builtin", "aiohttp"])
def any_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per engine transport: ``Client``'s default is switched for the test's duration.

    Modules that test transport behaviour (protocol, faults, connection habits) use it with
    ``pytestmark = pytest.mark.usefixtures("any_transport")``; aiohttp stays the reference implementation.
    """
    import evalscope.engine.client as client_mod

    monkeypatch.setattr(client_mod, "DEFAULT_TRANSPORT", request.param)
    return str(request.param)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama directory (tests/tinymodel.py); skipped with the reason when torch /
    transformers / tokenizers are not installed (pip install -e ".[local]")."""
    from tinymodel import build_tiny_llama, missing

    lack = missing()
    if lack is not None:
        pytest.skip(f"{lack} is not installed: the local-model tests need the 'local' extra")
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama")
