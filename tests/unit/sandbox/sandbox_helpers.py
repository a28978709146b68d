"""Helpers shared by the sandbox tests: an event-loop heartbeat and leak checks (processes, directories)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import psutil

from evalscope.eval.sandbox import sandbox_uid_range


class Heartbeat:
    """Ticks every 20 ms on the event loop; ``max_gap`` is the longest stall seen."""

    def __init__(self) -> None:
        self.ticks = 0
        self.max_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            self.ticks += 1
            last = now

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


#: Children that existed before the test started (e.g. multiprocessing's resource tracker, started by an
#: earlier test in the same session): not the sandbox's to clean up.
BASELINE: set[int] = set()


def snapshot_children() -> None:
    BASELINE.clear()
    BASELINE.update(p.pid for p in psutil.Process().children(recursive=True))


def leftover_processes() -> list[str]:
    """New children of this test process, and any process running under a sandbox uid."""
    out = [
        f"child {p.pid} {p.name()}"
        for p in psutil.Process().children(recursive=True)
        if p.pid not in BASELINE and p.is_running()
    ]
    uids = sandbox_uid_range()
    for p in psutil.process_iter(["uids", "name"]):
        with contextlib.suppress(psutil.Error):
            u = p.info["uids"]
            if u is not None and (u.real in uids or u.effective in uids):
                out.append(f"sandbox-uid {p.pid} {p.info['name']} uid={u.real}")
    return out


def assert_clean(run_root: Path) -> None:
    assert list(run_root.iterdir()) == [], f"temp dirs left: {list(run_root.iterdir())}"
    left = leftover_processes()
    assert not left, f"processes left behind: {left}"
