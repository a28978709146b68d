"""One timer drives every open stream.

A sleep per chunk per stream costs a coroutine wake-up, a timer-heap entry and a context switch for each of
thousands of streams, and each of them drifts on its own. Instead every pending action sits in one heap of
``(due_ns, seq, item)``; a single loop callback pops everything that is due, lets each item act (write a
chunk, finish a request) and re-arms for the earliest remaining due time.

OS timers (epoll, libuv) only have millisecond precision, so the callback is armed ``spin_us`` early and then
re-queues itself with ``call_soon`` until the due time: each spin step still goes through the selector, so
I/O keeps flowing while we wait for sub-millisecond accuracy.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from time import perf_counter_ns
from typing import Protocol


class TickItem(Protocol):
    """Something the ticker calls when it is due."""

    def fire(self, due_ns: int) -> int | None:
        """Act for the deadline ``due_ns``; return the next due time, or None when finished."""

    def fail(self, exc: BaseException) -> None:
        """``fire`` raised ``exc``: release whoever waits on this item (it is dropped from the heap)."""


class Ticker:
    """A heap of deadlines served by one self-rearming loop callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spin_us: int = 1000) -> None:
        self._loop = loop
        self._spin_ns = spin_us * 1000
        self._heap: list[tuple[int, int, TickItem]] = []
        self._seq = itertools.count()
        self._handle: asyncio.Handle | None = None
        self._armed_ns: int | None = None
        self._ticking = False
        self._closed = False

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, due_ns: int, item: TickItem) -> None:
        """Call ``item.fire(due_ns)`` at ``due_ns`` (perf_counter_ns clock)."""
        heapq.heappush(self._heap, (due_ns, next(self._seq), item))
        if not self._ticking and (self._armed_ns is None or due_ns < self._armed_ns):
            self._arm(due_ns)

    def close(self) -> None:
        """Stop the timer and forget every pending item."""
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._heap.clear()

    def _arm(self, due_ns: int) -> None:
        if self._closed:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._armed_ns = due_ns
        delay_ns = due_ns - perf_counter_ns() - self._spin_ns
        if delay_ns <= 0:
            self._handle = self._loop.call_soon(self._tick)
        else:
            self._handle = self._loop.call_later(delay_ns / 1e9, self._tick)

    def _tick(self) -> None:
        self._handle = None
        self._armed_ns = None
        heap = self._heap
        pop = heapq.heappop
        push = heapq.heappush
        seq = self._seq
        later: list[tuple[int, int, TickItem]] = []
        self._ticking = True
        try:
            # Only what is due now, and each item at most once per tick (unless its next step is due at the
            # same instant, e.g. ITL 0): a server behind schedule then sends one chunk per stream per tick and
            # returns to the event loop in between, so it keeps accepting and reading requests instead of
            # spending seconds catching up inside one callback.
            now = perf_counter_ns()
            while heap and heap[0][0] <= now:
                due, _, item = pop(heap)
                try:
                    nxt = item.fire(due)
                except Exception as exc:  # noqa: BLE001 - one broken item must not stop every other stream
                    item.fail(exc)
                    nxt = None
                if nxt is not None:
                    if nxt == due:
                        push(heap, (nxt, next(seq), item))
                    else:
                        later.append((nxt, next(seq), item))
        finally:
            self._ticking = False
            for entry in later:
                push(heap, entry)
            if heap:
                self._arm(heap[0][0])
