"""Fixtures for the sandbox tests: an isolated sandbox (skipped with the reason when isolation is unavailable)
and a heartbeat proving the event loop stays responsive."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sandbox_helpers import Heartbeat, snapshot_children

from evalscope.errors import SandboxUnavailableError
from evalscope.eval.sandbox import Sandbox


@pytest.fixture
def run_root(tmp_path: Path) -> Path:
    snapshot_children()
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture(params=["namespaces", "bwrap"])
async def sandbox(request: pytest.FixtureRequest, run_root: Path) -> AsyncIterator[Sandbox]:
    """Every sandbox test runs under both launchers: our namespaces launcher and Debian's bubblewrap."""
    backend = str(request.param)
    if backend == "bwrap" and shutil.which("bwrap", path="/usr/local/bin:/usr/bin:/bin") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap; .ci/run installs it)")
    sb = Sandbox(max_parallel=os.cpu_count() or 2, tmp_root=str(run_root), isolation=backend)
    try:
        await sb.start()
    except SandboxUnavailableError as e:
        pytest.skip(f"{backend} isolation unavailable here: {e.one_line()}")
    yield sb


@pytest.fixture
async def heartbeat() -> AsyncIterator[Heartbeat]:
    hb = Heartbeat()
    hb.start()
    yield hb
    await hb.stop()
