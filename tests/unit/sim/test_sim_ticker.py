"""The shared timer: ordering, absolute deadlines, re-arming for earlier items, isolation of failures."""

from __future__ import annotations

import asyncio
from time import perf_counter_ns

import pytest

from evalscope.sim.ticker import Ticker

pytestmark = pytest.mark.timeout(10)


class Item:
    def __init__(self, name: str, log: list[tuple[str, int, int]], repeats: int, step_ns: int) -> None:
        self.name, self.log, self.left, self.step = name, log, repeats, step_ns
        self.failed: BaseException | None = None

    def fire(self, due_ns: int) -> int | None:
        self.log.append((self.name, due_ns, perf_counter_ns()))
        self.left -= 1
        if self.name == "bad":
            raise RuntimeError("boom")
        return due_ns + self.step if self.left > 0 else None

    def fail(self, exc: BaseException) -> None:
        self.failed = exc


async def test_order_deadlines_and_failure_isolation() -> None:
    ticker = Ticker(asyncio.get_running_loop(), spin_us=1000)
    log: list[tuple[str, int, int]] = []
    now = perf_counter_ns()
    late = Item("late", log, 3, 2_000_000)
    bad = Item("bad", log, 1, 0)
    ticker.schedule(now + 20_000_000, late)
    ticker.schedule(now + 5_000_000, bad)  # earlier than the armed deadline: the ticker re-arms
    early = Item("early", log, 2, 1_000_000)
    ticker.schedule(now + 3_000_000, early)
    await asyncio.sleep(0.06)
    # when late, an item fires at most once per tick, so only per-item order is guaranteed
    assert sorted(name for name, _, _ in log) == ["bad", "early", "early", "late", "late", "late"]
    assert [d for name, d, _ in log if name == "early"] == [now + 3_000_000, now + 4_000_000]
    assert [name for name, _, _ in log][-3:] == ["late", "late", "late"]
    assert isinstance(bad.failed, RuntimeError)  # the failure reached its item; the others kept going
    dues = [d for name, d, _ in log if name == "late"]
    assert dues == [now + 20_000_000, now + 22_000_000, now + 24_000_000]
    assert all(sent >= due for _, due, sent in log)  # never early
    assert len(ticker) == 0
    ticker.close()
