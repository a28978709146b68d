"""SimProcess cleans up after owners that died: stale ``evalscope-sim-*`` directories go at the next start,
and a child whose lifeline pipe closes stops serving."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from evalscope.sim import SimProcess
from evalscope.sim.process import _start_time, clean_stale_dirs

pytestmark = pytest.mark.timeout(60)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_clean_stale_dirs_removes_only_dead_owners(tmp_path: Path) -> None:
    dead = tmp_path / "evalscope-sim-dead"
    dead.mkdir()
    (dead / "owner").write_text(str(_dead_pid()))
    (dead / "port").write_text("1")
    alive = tmp_path / "evalscope-sim-alive"
    alive.mkdir()
    (alive / "owner").write_text(f"{os.getpid()} {_start_time(os.getpid()) or ''}")
    reused = tmp_path / "evalscope-sim-reused"  # our PID, but another start time: the owner is gone
    reused.mkdir()
    (reused / "owner").write_text(f"{os.getpid()} 1")
    unowned_new = tmp_path / "evalscope-sim-new"  # an older version's dir, recent: maybe still in use
    unowned_new.mkdir()
    unowned_old = tmp_path / "evalscope-sim-old"
    unowned_old.mkdir()
    old = time.time() - 3 * 24 * 3600
    os.utime(unowned_old, (old, old))
    other = tmp_path / "unrelated-dir"
    other.mkdir()
    removed = {p.name for p in clean_stale_dirs(str(tmp_path))}
    expected = {"evalscope-sim-dead", "evalscope-sim-old"}
    if sys.platform.startswith("linux"):
        expected.add("evalscope-sim-reused")
    assert removed == expected
    assert alive.is_dir() and unowned_new.is_dir() and other.is_dir()


def test_start_cleans_stale_dirs_and_writes_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "evalscope-sim-stale"
    stale.mkdir()
    (stale / "owner").write_text(str(_dead_pid()))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with SimProcess() as sim:
        assert not stale.exists()
        (d,) = list(tmp_path.glob("evalscope-sim-*"))
        assert int((d / "owner").read_text().split()[0]) == os.getpid()
        assert sim._lifeline is not None
        # closing the lifeline (what the kernel does when we die) stops the child
        os.close(sim._lifeline)
        sim._lifeline = None
        assert sim._proc is not None
        sim._proc.wait(10)
    assert list(tmp_path.glob("evalscope-sim-*")) == []
