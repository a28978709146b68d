"""Retry policy for eval (never used for measured perf requests: E1).

Only transient failures are retried (E2): connect errors, read / total timeouts, a stream that ended early,
HTTP 408 / 409 / 429 / 5xx (also as an error object inside the stream). Each retry sleeps an exponential
back-off with full jitter, or the server's ``Retry-After`` when it gave one (capped). A sample stops after
``max_attempts`` attempts or when its deadline passes; the last record is returned and the caller marks the
sample errored (never silently wrong: excluded from the report's `score`, counted wrong in `score_all`).

Tests set :data:`BACKOFF_SCALE` to 0 (or pass ``base_delay_s=0``) to make every back-off instant.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from evalscope.engine.records import ErrorInfo, Request, RequestRecord

#: Multiplies every back-off sleep; monkeypatch to 0 in tests.
BACKOFF_SCALE: float = 1.0

RETRYABLE_STATUS: frozenset[int] = frozenset({408, 409, 429})
RETRYABLE_KINDS: frozenset[str] = frozenset({"connect", "read_timeout", "total_timeout", "incomplete_stream"})


def is_retryable(err: ErrorInfo | None) -> bool:
    """True for transient failures (see the module docstring); 400/401/403/404/422, DNS, malformed: False."""
    if err is None:
        return False
    if err.kind in RETRYABLE_KINDS:
        return True
    if err.kind in ("http_status", "server_error_event"):
        status = err.http_status
        if status is None:
            # An error object mid-stream without a status: the server failed while generating.
            return err.kind == "server_error_event"
        return status in RETRYABLE_STATUS or 500 <= status <= 599
    return False


@dataclass(slots=True)
class RetryPolicy:
    """Attempts, back-off and deadline for one logical request.

    ``delay(attempt)`` for the n-th retry (1-based) is ``U(0, min(max_delay, base * 2**(n-1)))`` (full
    jitter); a ``Retry-After`` hint replaces it, capped at ``retry_after_cap_s``. No sleep ever passes the
    deadline: when the next attempt could not start before it, the policy gives up.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    retry_after_cap_s: float = 60.0
    deadline_s: float | None = 1800.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry_number: int, err: ErrorInfo | None) -> float:
        """Seconds to sleep before retry ``retry_number`` (1 = the first retry)."""
        if err is not None and err.retry_after_s is not None:
            d = min(max(0.0, err.retry_after_s), self.retry_after_cap_s)
        else:
            ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** max(0, retry_number - 1)))
            d = self.rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0
        return d * BACKOFF_SCALE


class Gate(Protocol):
    """Concurrency gate held during each attempt and released during back-off sleeps."""

    async def acquire(self) -> None: ...

    def release(self, rec: RequestRecord | None) -> None: ...


@dataclass(slots=True)
class RetryResult:
    """The last attempt's record and how many attempts were made (``gave_up`` names why it stopped)."""

    record: RequestRecord
    attempts: int
    gave_up: str | None = None
    errors: list[ErrorInfo] = field(default_factory=list)


SendFn = Callable[[Request], Awaitable[RequestRecord]]


def _deadline_record(req: Request, started_ns: int, msg: str) -> RequestRecord:
    now = time.perf_counter_ns()
    return RequestRecord(
        request_id=req.request_id,
        status="error",
        scheduled_ns=started_ns,
        sent_ns=started_ns,
        end_ns=now,
        error=ErrorInfo(kind="total_timeout", message=msg),
    )


async def send_with_retry(
    send: SendFn,
    req: Request,
    policy: RetryPolicy,
    gate: Gate | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    request_id: Callable[[int], int | str] | None = None,
) -> RetryResult:
    """Send ``req`` until it succeeds, fails permanently, runs out of attempts or passes the deadline.

    ``request_id(attempt)`` gives each attempt its own id (attempt is 1-based); the gate (if any) is held
    only while a request is in flight. Cancellation propagates.
    """
    start = clock()
    deadline = None if policy.deadline_s is None else start + policy.deadline_s
    errors: list[ErrorInfo] = []
    attempt = 0
    rec: RequestRecord | None = None
    while True:
        attempt += 1
        if request_id is not None:
            req.request_id = request_id(attempt)
        if gate is not None:
            await gate.acquire()
        try:
            if deadline is None:
                rec = await send(req)
            else:
                remaining = deadline - clock()
                started = time.perf_counter_ns()
                try:
                    async with asyncio.timeout(max(remaining, 0.0)):
                        rec = await send(req)
                except TimeoutError:
                    rec = _deadline_record(req, started, f"sample deadline of {policy.deadline_s:g} s passed")
        finally:
            if gate is not None:
                gate.release(rec)
        if rec.ok:
            return RetryResult(rec, attempt, None, errors)
        assert rec.error is not None
        errors.append(rec.error)
        if not is_retryable(rec.error):
            return RetryResult(rec, attempt, "not_retryable", errors)
        if deadline is not None and clock() >= deadline:
            return RetryResult(rec, attempt, "deadline", errors)
        if attempt >= policy.max_attempts:
            return RetryResult(rec, attempt, "max_attempts", errors)
        wait = policy.delay(attempt, rec.error)
        if deadline is not None and clock() + wait >= deadline:
            return RetryResult(rec, attempt, "deadline", errors)
        if wait > 0:
            await sleep(wait)
        rec = None


class AIMDGate:
    """Concurrency limit that halves on HTTP 429 (at most once per ``cooldown_s``) and grows by one per
    window of ``limit`` successes, between ``min_limit`` and ``max_limit`` (additive increase,
    multiplicative decrease). Waiters are served first-come first-served.
    """

    def __init__(self, max_limit: int, min_limit: int = 1, cooldown_s: float = 1.0) -> None:
        self.max_limit = max(1, max_limit)
        self.min_limit = max(1, min(min_limit, self.max_limit))
        self.limit = self.max_limit
        self.in_flight = 0
        self.cooldown_s = cooldown_s
        self.cuts = 0
        self.min_seen = self.limit
        self._last_cut = -1e18
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.in_flight -= 1  # the slot was handed over just as we were cancelled: give it back
                self._wake()
            raise

    def release(self, rec: RequestRecord | None) -> None:
        self.in_flight -= 1
        if rec is not None:
            err = rec.error
            if err is not None and err.http_status == 429:
                now = time.monotonic()
                if now - self._last_cut >= self.cooldown_s:
                    self._last_cut = now
                    self.limit = max(self.min_limit, self.limit // 2)
                    self.min_seen = min(self.min_seen, self.limit)
                    self.cuts += 1
                    self._successes = 0
            elif rec.ok and self.limit < self.max_limit:
                self._successes += 1
                if self._successes >= self.limit:
                    self._successes = 0
                    self.limit += 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            fut = self._waiters.popleft()
            if fut.done():
                continue
            self.in_flight += 1
            fut.set_result(None)
