"""``--server-metrics URL``: scrape the server's Prometheus ``/metrics`` once a second during the run.

The server's own gauges say what the client cannot see: how many requests it is running and how many wait in
its queue, and how full its KV cache is. One small task on the run's event loop (the coordinator's, with
worker processes) fetches the page, keeps the tracked gauges, appends one line per scrape to
``server_metrics.jsonl`` in the run directory, and folds the values into per-stage min / mean / max. A scrape
is bounded (2 s, 8 MiB); a failed one is counted and logged in the timeline, never fatal.

The text exposition format is parsed here (a few dozen lines; ``prometheus_client`` would add an import and a
dependency for the same result): ``name{label="value",...} number [timestamp]``, label values may hold
escaped quotes, braces and spaces; ``NaN`` samples are skipped. A gauge with several label sets (one per
engine or model) is summed when it counts requests and averaged when it is a usage fraction.

May import: nothing from evalscope (aiohttp, its own parser).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import orjson

#: Tracked gauges and how their label sets combine: ``sum`` (request counts) or ``mean`` (fractions 0-1).
TRACKED: dict[str, str] = {
    # vLLM
    "vllm:num_requests_running": "sum",
    "vllm:num_requests_waiting": "sum",
    "vllm:kv_cache_usage_perc": "mean",
    "vllm:gpu_cache_usage_perc": "mean",  # before vLLM V1 renamed it
    # llama.cpp llama-server --metrics
    "llamacpp:requests_processing": "sum",
    "llamacpp:requests_deferred": "sum",
    "llamacpp:kv_cache_usage_ratio": "mean",  # dropped by recent llama.cpp builds
    # SGLang --enable-metrics
    "sglang:num_running_reqs": "sum",
    "sglang:num_queue_reqs": "sum",
    "sglang:token_usage": "mean",
}
_PREFIXES = tuple(TRACKED)
INTERVAL_S = 1.0
TIMEOUT_S = 2.0
MAX_BYTES = 8 * 1024 * 1024
_clock = time.perf_counter_ns


def metrics_url(url: str) -> str:
    """``http://host:port`` or ``.../`` -> ``.../metrics``; any other path is kept as given."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/metrics")
    return urlunsplit(parts)


def _labels_end(line: str, start: int) -> int:
    """Index just past the ``}`` closing the label set that opens at ``start`` (quotes and escapes honoured)."""
    i, n, quoted = start + 1, len(line), False
    while i < n:
        c = line[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "}":
            return i + 1
        i += 1
    raise ValueError("unterminated label set")


def parse_exposition(text: str, tracked: dict[str, str] | None = None) -> dict[str, float]:
    """The tracked gauges in a Prometheus text page, label sets combined (sum or mean); others ignored."""
    tracked = TRACKED if tracked is None else tracked
    prefixes = _PREFIXES if tracked is TRACKED else tuple(tracked)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith(prefixes):
            continue  # comments, blank lines and untracked families
        brace = line.find("{")
        space = len(line)
        for j, ch in enumerate(line):
            if ch in " \t":
                space = j
                break
        if brace != -1 and brace < space:
            name = line[:brace]
            try:
                rest = line[_labels_end(line, brace) :]
            except ValueError:
                continue
        else:
            name = line[:space]
            rest = line[space:]
        if name not in tracked:
            continue  # a longer name sharing a tracked prefix (e.g. ..._total)
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        if math.isnan(value):
            continue
        sums[name] = sums.get(name, 0.0) + value
        counts[name] = counts.get(name, 0) + 1
    return {k: (v / counts[k] if tracked[k] == "mean" else v) for k, v in sums.items()}


class _StageStats:
    __slots__ = ("failures", "scrapes", "series")

    def __init__(self) -> None:
        self.scrapes = 0
        self.failures = 0
        self.series: dict[str, list[float]] = {}  # name -> [n, sum, min, max]

    def add(self, values: dict[str, float]) -> None:
        self.scrapes += 1
        for k, v in values.items():
            s = self.series.get(k)
            if s is None:
                self.series[k] = [1, v, v, v]
            else:
                s[0] += 1
                s[1] += v
                if v < s[2]:
                    s[2] = v
                if v > s[3]:
                    s[3] = v

    def summary(self, url: str) -> dict[str, Any]:
        return {
            "url": url,
            "scrapes": self.scrapes,
            "failures": self.failures,
            "series": {
                k: {"min": s[2], "mean": s[1] / s[0], "max": s[3], "samples": int(s[0])}
                for k, s in sorted(self.series.items())
            },
        }


class ServerMetricsScraper:
    """Scrapes ``url`` every ``interval_s`` into ``path`` (JSONL) and per-stage statistics.

    Call :meth:`start` on the running loop, :meth:`begin_stage` / :meth:`end_stage` around each measured
    stage, and :meth:`stop` at the end (idempotent).
    """

    def __init__(
        self,
        url: str,
        path: Path | None,
        t0_ns: int,
        interval_s: float = INTERVAL_S,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.url = metrics_url(url)
        self.path = path
        self.t0_ns = t0_ns
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.scrapes = 0
        self.failures = 0
        self.last_error: str | None = None
        self._stage: _StageStats | None = None
        self._stage_index: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._file: IO[bytes] | None = None

    def start(self) -> None:
        if self.path is not None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed in stop()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="server-metrics")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._file is not None:
            self._file.close()
            self._file = None

    def begin_stage(self, index: int) -> None:
        self._stage = _StageStats()
        self._stage_index = index

    def end_stage(self) -> dict[str, Any] | None:
        st, self._stage, self._stage_index = self._stage, None, None
        if st is None:
            return None
        out = st.summary(self.url)
        if self.last_error and st.failures:
            out["last_error"] = self.last_error
        return out

    async def _run(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            start = time.monotonic()
            k = 0
            while True:
                await self._scrape(session)
                k += 1
                nxt = start + k * self.interval_s
                now = time.monotonic()
                if nxt < now:  # a slow scrape: skip the missed ticks rather than bunch up
                    k = int((now - start) / self.interval_s) + 1
                    nxt = start + k * self.interval_s
                await asyncio.sleep(nxt - now)

    async def _scrape(self, session: Any) -> None:
        import aiohttp

        t = _clock()
        line: dict[str, Any] = {"t": round((t - self.t0_ns) / 1e9, 3), "stage": self._stage_index}
        try:
            async with session.get(self.url, headers={"Accept": "text/plain"}) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                body = bytearray()
                while True:
                    chunk = await resp.content.readany()
                    if not chunk:
                        break
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise ValueError(f"page larger than {MAX_BYTES} bytes")
            values = parse_exposition(body.decode("utf-8", "replace"))
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if self._stage is not None:
                self._stage.failures += 1
            line["error"] = self.last_error
        else:
            self.scrapes += 1
            if self._stage is not None:
                self._stage.add(values)
            line["values"] = values
        if self._file is not None:
            self._file.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
            self._file.flush()
