"""``--ray``: two Ray actors on a local Ray instance run the same seeded load as one in-process worker."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import psutil
import pytest
from test_perf_workers import LOAD, compare  # same directory (rootdir-less test modules)

from evalscope.perf.runner import run_perf
from evalscope.sim import SimConfig, SimProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None, reason='ray not installed (pip install "evalscope[ray]")'
    ),
    # Ray's own modules warn (deprecations, token setup); the project's warnings-as-errors is for our code
    pytest.mark.filterwarnings("ignore"),
]

RAY_DAEMONS = ("raylet", "gcs_server", "dashboard", "log_monitor", "ray::")


def ray_pids() -> set[int]:
    out = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if any(d in cmd for d in RAY_DAEMONS):
            out.add(p.info["pid"])
    return out


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_ray_actors_vs_one_worker(tmp_path: Path) -> None:
    import ray

    before = ray_pids()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with SimProcess(SimConfig(ttft_ms=20, itl_ms=2, output_tokens=32)) as sim:
            one = run_perf(url=sim.url, parallel=16, outputs_dir=str(tmp_path / "1"), **LOAD)
            two = run_perf(url=sim.url, parallel=16, outputs_dir=str(tmp_path / "ray"), ray="local", **LOAD)
        assert ray.is_initialized()  # the run used the caller's instance and left it to the caller
    finally:
        ray.shutdown()
    assert two["workers"]["backend"] == "ray" and two["workers"]["count"] == 2
    cl = two["stages"][0]["client"]
    assert cl["backend"] == "ray"
    # pre-partitioned closed-loop indices: an exact split
    assert cl["worker_requests"] == [200, 200]
    compare(one, two, 2)
    deadline = time.monotonic() + 15
    while (left := ray_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Ray processes left after shutdown: {left}"


def test_missing_ray_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from evalscope.errors import ConfigError
    from evalscope.perf.ray_backend import import_ray

    real = builtins.__import__

    def fake(name: str, *a: object, **k: object) -> object:
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ConfigError) as ei:
        import_ray()
    assert ei.value.exit_code == 2
    assert 'pip install "evalscope[ray]"' in str(ei.value) + str(getattr(ei.value, "hint", ""))
