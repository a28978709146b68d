"""Fixtures for the sandbox tests: an isolated sandbox (skipped with the reason when isolation is unavailable)
and a heartbeat proving the event loop stays responsive."""

from __future__ import annotations

import os
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


@pytest.fixture
async def sandbox(run_root: Path) -> AsyncIterator[Sandbox]:
    sb = Sandbox(max_parallel=os.cpu_count() or 2, tmp_root=str(run_root))
    try:
        await sb.start()
    except SandboxUnavailableError as e:
        pytest.skip(f"isolation unavailable here: {e.one_line()}")
    yield sb


@pytest.fixture
async def heartbeat() -> AsyncIterator[Heartbeat]:
    hb = Heartbeat()
    hb.start()
    yield hb
    await hb.stop()
