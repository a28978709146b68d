"""Send-side check against the built-in simulator: its arrival stamp of each request minus the client's sent.

Every latency is measured from ``sent_ns``, stamped before the request is built and written. Time spent
between that stamp and the bytes reaching the server (request set-up queued behind other requests, a busy
loop) is added to TTFT and end-to-end latency, and no client-side monitor sees it. The simulator stamps each
request's arrival (with the kernel's receive time when it runs on the asyncio loop: independent of when its
own loop read the socket), keyed by the ``X-Request-Id`` the client sends. On one machine both stamps are on
CLOCK_MONOTONIC, so ``arrival - sent`` is the send-side delay (plus a loopback hop of a few µs).

Checked only when the server answers ``/sim/truth`` (our simulator) on a loopback address; a sample of the
stage's records (read back from ``records.jsonl``, so nothing is added to the per-request path).

May import: ``engine.session`` only (the GET is the caller's: ``Client.get``, on the run's own transport).
"""

from __future__ import annotations

import ipaddress
import mmap
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from evalscope.engine.session import base_url

#: Records sampled per stage (evenly spread over the stage's lines).
MAX_SAMPLE = 4000
#: A send side below this means the two processes do not share a clock: no check.
_NEGATIVE_NS = -1_000_000


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sample_sent(records: Path, offset: int, stage: int, max_sample: int = MAX_SAMPLE) -> dict[str, int]:
    """``{request id: sent_ns}`` for successful records of ``stage`` written after byte ``offset``.

    At most ``max_sample`` lines are parsed, taken at evenly spaced byte positions (the line that starts at or
    after each), so a long stage costs a few thousand parsed lines, not a split of every line; the file is
    mapped, so memory stays flat however long the run (only the sampled lines' pages are read)."""
    try:
        with records.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= offset:
                return {}
            # mapped, not read: a million-request stage is hundreds of MB, and only the sampled lines are touched
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _sample_lines(data, offset, size, stage, max_sample)
    except (OSError, ValueError):
        return {}


def _sample_lines(data: mmap.mmap, start: int, n: int, stage: int, max_sample: int) -> dict[str, int]:
    stride = max(1, (n - start) // max_sample)
    out: dict[str, int] = {}
    pos = start
    while pos < n:
        end = data.find(b"\n", pos)
        if end < 0:
            break  # a torn last line
        try:
            d = orjson.loads(data[pos:end])
        except orjson.JSONDecodeError:
            d = None
        if (
            isinstance(d, dict)
            and d.get("stage") == stage
            and d.get("status") == "ok"
            and not d.get("warmup")
        ):
            out[str(d["id"])] = int(d["sent_ns"])
        nxt = pos + stride
        if nxt <= end + 1:
            pos = end + 1
        else:
            begin = data.find(b"\n", nxt - 1)
            if begin < 0:
                break
            pos = begin + 1
    return out


def summarize(sent: dict[str, int], truth: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Percentiles (ms) of simulator arrival - client sent over the joined sample; None when not comparable."""
    diffs: list[int] = []
    kernel = 0
    for t in truth:
        s = sent.get(str(t.get("request_id")))
        if s is None:
            continue
        k = t.get("kernel_arrival_ns")
        if k is not None:
            kernel += 1
        diffs.append((k if k is not None else t["arrival_ns"]) - s)
    if not diffs or min(diffs) < _NEGATIVE_NS:
        return None
    diffs.sort()
    n = len(diffs)

    def pct(p: float) -> float:
        return diffs[min(n - 1, max(0, int(-(-p * n // 100)) - 1))] / 1e6

    return {
        "p50": pct(50),
        "p99": pct(99),
        "max": diffs[-1] / 1e6,
        "mean": sum(diffs) / n / 1e6,
        "sampled": n,
        # kernel: the kernel's receive time (independent of the simulator's loop); arrival: its loop's stamp,
        # which also includes the simulator's own lateness in reading the socket (an upper bound).
        "clock": "kernel" if kernel == n else "arrival",
    }


def records_offset(records: Path) -> int:
    """The current size of the records file (where the next stage's lines will start)."""
    try:
        return records.stat().st_size
    except OSError:
        return 0


#: ``Client.get``: (status, headers, body) of a GET, raising when no answer came
Getter = Callable[[str], Awaitable[tuple[int, Mapping[str, str], bytes]]]


async def measure(
    url: str, records: Path, offset: int, stage: int, requests: int, get: Getter
) -> dict[str, Any] | None:
    """The send-side block for one stage, or None (not our simulator, not on this machine, no sample)."""
    if not _loopback(url):
        return None
    sent = sample_sent(records, offset, stage)
    if not sent:
        return None
    target = f"{base_url(url)}/sim/truth?view=arrival&last={requests + 64}"
    try:
        status, _headers, body = await get(target)
        if status != 200:
            return None
        truth = orjson.loads(body)
    except Exception:  # noqa: BLE001 - no answer, or not our simulator's: no check
        return None
    if not isinstance(truth, list):
        return None
    return summarize(sent, truth)
