"""Retry policy (E2): transient-only retries, Retry-After honoured and capped, max attempts, deadline; AIMD."""

from __future__ import annotations

import asyncio
import random

import pytest

from evalscope.engine import retry as retry_mod
from evalscope.engine.records import ErrorInfo, Request, RequestRecord
from evalscope.engine.retry import AIMDGate, RetryPolicy, is_retryable, send_with_retry


def _rec(status: str = "ok", err: ErrorInfo | None = None) -> RequestRecord:
    return RequestRecord(request_id=0, status=status, scheduled_ns=0, sent_ns=0, end_ns=1, error=err)


def _http(code: int, retry_after: float | None = None) -> RequestRecord:
    return _rec("error", ErrorInfo("http_status", f"HTTP {code}", code, retry_after_s=retry_after))


class Script:
    """A fake send() returning queued records; records the request ids it saw."""

    def __init__(self, records: list[RequestRecord]) -> None:
        self.records = list(records)
        self.ids: list[object] = []

    async def __call__(self, req: Request) -> RequestRecord:
        self.ids.append(req.request_id)
        return self.records.pop(0) if self.records else _rec()


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, s: float) -> None:
        self.calls.append(s)


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (ErrorInfo("connect"), True),
        (ErrorInfo("read_timeout"), True),
        (ErrorInfo("total_timeout"), True),
        (ErrorInfo("incomplete_stream"), True),
        (ErrorInfo("http_status", http_status=408), True),
        (ErrorInfo("http_status", http_status=409), True),
        (ErrorInfo("http_status", http_status=429), True),
        (ErrorInfo("http_status", http_status=500), True),
        (ErrorInfo("http_status", http_status=503), True),
        (ErrorInfo("server_error_event"), True),
        (ErrorInfo("http_status", http_status=400), False),
        (ErrorInfo("http_status", http_status=401), False),
        (ErrorInfo("http_status", http_status=403), False),
        (ErrorInfo("http_status", http_status=404), False),
        (ErrorInfo("http_status", http_status=422), False),
        (ErrorInfo("dns"), False),
        (ErrorInfo("malformed_stream"), False),
        (ErrorInfo("client"), False),
        # the server's own answer, not a passing fault: an empty stream, a redirect on the POST
        (ErrorInfo("empty_stream"), False),
        (ErrorInfo("redirect", http_status=302), False),
        (ErrorInfo("redirect", http_status=301), False),
        (None, False),
    ],
)
def test_retryable_classification(err: ErrorInfo | None, expected: bool) -> None:
    assert is_retryable(err) is expected


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
async def test_non_retryable_status_is_sent_once(code: int) -> None:
    send, sleep = Script([_http(code)]), Sleeps()
    res = await send_with_retry(send, Request(), RetryPolicy(max_attempts=5), sleep=sleep)
    assert res.attempts == 1 and res.gave_up == "not_retryable"
    assert sleep.calls == []
    assert res.record.error is not None and res.record.error.http_status == code


async def test_retry_after_is_honoured_and_capped() -> None:
    send, sleep = Script([_http(429, 2.5), _http(503, 500.0), _rec()]), Sleeps()
    pol = RetryPolicy(max_attempts=5, base_delay_s=0.1, retry_after_cap_s=7.0, deadline_s=None)
    res = await send_with_retry(send, Request(), pol, sleep=sleep)
    assert res.record.ok and res.attempts == 3
    assert sleep.calls == [2.5, 7.0]


async def test_exponential_backoff_with_full_jitter_bounds() -> None:
    send, sleep = Script([_http(500)] * 5), Sleeps()
    pol = RetryPolicy(
        max_attempts=6, base_delay_s=1.0, max_delay_s=3.0, deadline_s=None, rng=random.Random(1)
    )
    res = await send_with_retry(send, Request(), pol, sleep=sleep)
    assert res.record.ok and res.attempts == 6
    ceilings = [1.0, 2.0, 3.0, 3.0, 3.0]
    assert len(sleep.calls) == 5
    for got, ceil in zip(sleep.calls, ceilings, strict=True):
        assert 0.0 <= got <= ceil
    assert len(set(sleep.calls)) > 1  # jittered, not constant


async def test_max_attempts_then_errored() -> None:
    send, sleep = Script([_http(502)] * 10), Sleeps()
    res = await send_with_retry(send, Request(), RetryPolicy(max_attempts=3, base_delay_s=0), sleep=sleep)
    assert not res.record.ok and res.attempts == 3 and res.gave_up == "max_attempts"
    assert len(send.ids) == 3
    assert [e.http_status for e in res.errors] == [502, 502, 502]


async def test_deadline_stops_retries() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    async def sleep(s: float) -> None:
        now[0] += s

    send = Script([_http(503, 4.0)] * 10)
    pol = RetryPolicy(max_attempts=100, deadline_s=10.0)
    res = await send_with_retry(send, Request(), pol, sleep=sleep, clock=clock)
    # 0 s, 4 s, 8 s; a fourth attempt would start at 12 s > 10 s
    assert res.attempts == 3 and res.gave_up == "deadline"


async def test_deadline_cuts_a_hanging_request() -> None:
    async def hang(req: Request) -> RequestRecord:
        await asyncio.sleep(30)
        return _rec()

    pol = RetryPolicy(max_attempts=5, deadline_s=0.2, base_delay_s=0)
    res = await asyncio.wait_for(send_with_retry(hang, Request(), pol), 5)
    assert not res.record.ok and res.record.error is not None
    assert res.record.error.kind == "total_timeout"
    assert res.gave_up == "deadline"


async def test_backoff_scale_patchable_to_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_mod, "BACKOFF_SCALE", 0.0)
    send, sleep = Script([_http(429, 30.0), _http(500), _rec()]), Sleeps()
    res = await send_with_retry(send, Request(), RetryPolicy(base_delay_s=5.0), sleep=sleep)
    assert res.record.ok and res.attempts == 3
    assert sleep.calls == []  # zero-length waits are skipped


async def test_each_attempt_gets_its_own_request_id() -> None:
    send = Script([_http(500), _http(500), _rec()])
    res = await send_with_retry(
        send, Request(), RetryPolicy(base_delay_s=0), sleep=Sleeps(), request_id=lambda a: f"s1#{a}"
    )
    assert res.record.ok and send.ids == ["s1#1", "s1#2", "s1#3"]


async def test_aimd_gate_halves_on_429_and_recovers() -> None:
    gate = AIMDGate(16, cooldown_s=0.0)
    await gate.acquire()
    gate.release(_http(429))
    assert gate.limit == 8 and gate.cuts == 1
    await gate.acquire()
    gate.release(_http(429))
    assert gate.limit == 4
    for _ in range(4):
        await gate.acquire()
        gate.release(_rec())
    assert gate.limit == 5  # +1 after a window of `limit` successes


async def test_aimd_gate_bounds_in_flight() -> None:
    gate = AIMDGate(3)
    peak = 0
    inside = 0

    async def worker() -> None:
        nonlocal peak, inside
        await gate.acquire()
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0.01)
        inside -= 1
        gate.release(_rec())

    await asyncio.gather(*(worker() for _ in range(20)))
    assert peak == 3 and gate.in_flight == 0


async def test_aimd_gate_cooldown_limits_cuts() -> None:
    gate = AIMDGate(64, cooldown_s=60.0)
    for _ in range(5):
        await gate.acquire()
        gate.release(_http(429))
    assert gate.limit == 32 and gate.cuts == 1
