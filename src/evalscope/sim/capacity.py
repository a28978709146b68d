"""The simulator's capacity model: a batch of at most K sequences, a FIFO wait queue, an optional KV budget.

Without it (``max_batch`` and ``kv_budget_tokens`` unset) the simulator serves every request at once, so its
throughput is unbounded and its latency never depends on load. With it, a request that arrives when K
sequences are running (or when its tokens do not fit in the KV budget) waits in a FIFO queue; when a
sequence ends, the head of the queue is admitted, and its schedule (prefill, then decode steps) starts then.

Times are kept on the *ideal* timeline: a sequence ends at the due time of its last chunk, and a queued
request is admitted at ``max(arrival, that end)``, not when the event loop got round to it. The event loop's
own lateness therefore never accumulates into the queue, which keeps the model exact enough to check a
client's measurements against the formulas in docs/capacity.md.

The decode step grows with the running batch: ``itl = itl_ms + itl_slope_ms * running`` (read by each stream
when it schedules its next chunk). Prefill does not stall decoding (a simplification: chunked prefill).

May import: ``sim.config`` only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Protocol

from evalscope.sim.config import SimConfig

_MS = 1_000_000


class _Alive(Protocol):
    def is_closing(self) -> bool: ...


@dataclass(slots=True)
class _Waiter:
    arrival_ns: int
    tokens: int
    fut: asyncio.Future[int | None]
    transport: _Alive | None


class Capacity:
    """Admission control of the simulated engine (one per server)."""

    def __init__(self, cfg: SimConfig) -> None:
        self.max_batch = cfg.max_batch
        self.kv_budget = cfg.kv_budget_tokens
        self.base_itl_ns = round(cfg.itl_ms * _MS)
        self.slope_ns = round(cfg.itl_slope_ms * _MS)
        self.running = 0
        self.kv_used = 0
        self.itl_ns = self.base_itl_ns  # the decode step at the current batch size (read per chunk)
        self._queue: deque[_Waiter] = deque()
        self.admitted_total = 0
        self.queued_total = 0
        self.max_waiting = 0

    @staticmethod
    def wanted(cfg: SimConfig) -> bool:
        """Whether ``cfg`` asks for a capacity model at all (else the hot path stays untouched)."""
        return cfg.max_batch is not None or cfg.kv_budget_tokens is not None or cfg.itl_slope_ms > 0

    @property
    def waiting(self) -> int:
        """Requests in the queue now (``vllm:num_requests_waiting``)."""
        return len(self._queue)

    def _fits(self, tokens: int) -> bool:
        if self.max_batch is not None and self.running >= self.max_batch:
            return False
        # an oversized request alone is still admitted (else it would wait forever)
        return self.kv_budget is None or not self.running or self.kv_used + tokens <= self.kv_budget

    def _take(self, tokens: int) -> None:
        self.running += 1
        self.kv_used += tokens
        self.admitted_total += 1
        self.itl_ns = self.base_itl_ns + self.slope_ns * self.running

    async def admit(self, arrival_ns: int, tokens: int, transport: _Alive | None = None) -> int | None:
        """Wait for a batch slot; return the ideal admission time (None: the client left while queued).

        ``tokens`` is what the sequence holds in the KV cache (prompt + planned output, reserved at
        admission, as an engine without preemption would).
        """
        if not self._queue and self._fits(tokens):
            self._take(tokens)
            return arrival_ns
        fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiter(arrival_ns, tokens, fut, transport))
        self.queued_total += 1
        self.max_waiting = max(self.max_waiting, len(self._queue))
        try:
            return await fut
        except asyncio.CancelledError:
            self._forget(fut)
            raise

    def _forget(self, fut: asyncio.Future[int | None]) -> None:
        for w in self._queue:
            if w.fut is fut:
                self._queue.remove(w)
                break
        else:  # granted just before the cancellation: give the slot back
            if fut.done() and not fut.cancelled() and fut.result() is not None:
                self.release(0, perf_counter_ns())

    def release(self, tokens: int, end_ns: int) -> None:
        """A sequence ended (ideally at ``end_ns``): free its slot and admit from the head of the queue."""
        self.running = max(0, self.running - 1)
        self.kv_used = max(0, self.kv_used - tokens)
        self.itl_ns = self.base_itl_ns + self.slope_ns * self.running
        q = self._queue
        while q:
            w = q[0]
            if w.fut.done() or (w.transport is not None and w.transport.is_closing()):
                q.popleft()  # gone while waiting: never admitted
                if not w.fut.done():
                    w.fut.set_result(None)
                continue
            if not self._fits(w.tokens):
                break
            q.popleft()
            self._take(w.tokens)
            w.fut.set_result(max(w.arrival_ns, end_ns))

    def snapshot(self) -> dict[str, int | None]:
        """What ``/sim/stats`` shows under ``capacity``."""
        return {
            "max_batch": self.max_batch,
            "kv_budget_tokens": self.kv_budget,
            "running": self.running,
            "waiting": self.waiting,
            "kv_used_tokens": self.kv_used,
            "itl_ns": self.itl_ns,
            "admitted": self.admitted_total,
            "queued": self.queued_total,
            "max_waiting": self.max_waiting,
        }


def service_time_s(
    cfg: SimConfig, output_tokens: int, prompt_tokens: int = 0, batch: int | None = None
) -> float:
    """Time one sequence holds a batch slot: prefill to the first token, then ``N - 1`` decode steps."""
    k = batch if batch is not None else (cfg.max_batch or 1)
    ttft = (cfg.ttft_ms + cfg.ttft_per_token_ms * prompt_tokens) / 1e3
    itl = (cfg.itl_ms + cfg.itl_slope_ms * k) / 1e3
    first = min(cfg.tokens_per_chunk, output_tokens)  # the first chunk's tokens come with the first token
    return ttft + max(0, output_tokens - first) * itl


def capacity_rps(cfg: SimConfig, output_tokens: int, prompt_tokens: int = 0) -> float | None:
    """Sustainable requests/s of the model (None: unbounded, no ``max_batch`` nor KV budget)."""
    k: int | None = cfg.max_batch
    if cfg.kv_budget_tokens is not None:
        by_kv = max(1, cfg.kv_budget_tokens // max(1, prompt_tokens + output_tokens))
        k = by_kv if k is None else min(k, by_kv)
    if k is None:
        return None
    return k / service_time_s(cfg, output_tokens, prompt_tokens, k)


def queue_waits(arrivals_s: list[float], k: int, service_s: float) -> list[float]:
    """Exact FIFO waits of the model with fixed service time: K servers, each arrival takes the earliest
    free slot (``start = max(arrival, earliest free)``). What the simulator does on its ideal timeline."""
    import heapq

    free = [0.0] * k
    waits = []
    for a in sorted(arrivals_s):
        start = max(a, heapq.heappop(free))
        waits.append(start - a)
        heapq.heappush(free, start + service_s)
    return waits


def erlang_c(k: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/k queue with ``offered`` = lambda * S Erlangs (< k)."""
    import math

    if offered >= k:
        return 1.0
    term = sum(offered**i / math.factorial(i) for i in range(k))
    last = offered**k / math.factorial(k) * k / (k - offered)
    return last / (term + last)
