"""Worker processes: ``--workers N | auto`` (and the worker logic that Ray actors reuse, see ray_backend.py).

One event loop saturates at a few tens of thousands of stream events per second; beyond that it inflates every
latency it measures. With ``--workers N`` the load runs in N worker processes (``spawn``), each with its own
event loop (uvloop), HTTP session and per-stage :class:`Aggregator`. The coordinator (the main process) owns
the schedule, the live view, the run directory and the results:

- **Same requests as one worker.** Request *i* of a stage gets the id ``id_base + i`` and the prompt number
  ``prompt_base + i`` of the seeded dataset, which every worker builds itself (no prompt bytes cross a pipe).
  Closed loop: the ``--parallel`` slots are split evenly across the workers, and each free slot claims the
  next request index from a counter in shared memory (one atomic increment per request, bounded by
  ``--number``: the total is exact and the tail stays balanced). Open loop: every worker recomputes the
  seeded arrival times and takes arrivals ``i % W == k``; times are absolute on the coordinator's clock
  (``perf_counter_ns`` is CLOCK_MONOTONIC, one clock for all processes of a machine); the concurrency cap is
  split across the workers.
- **Records** are encoded by the workers (orjson, one JSONL line each, with ``worker``) and sent to the
  coordinator in batches at least every 0.25 s; it appends the bytes to the single ``records.jsonl``.
- **Statistics**: at the end of a stage each worker sends ``Aggregator.to_state()``; the coordinator merges
  them exactly (HDR histograms add bucket by bucket) and writes the summary as with one worker.
- **Fidelity**: each worker measures its own event-loop lag and CPU; the lag histograms merge, the verdict
  uses the merged data and the busiest worker's CPU, and the ``client`` block lists every worker.
- **Signals**: workers ignore SIGINT; the coordinator's first Ctrl-C tells them to stop dispatching and drain,
  the second kills them by PID (records already received are flushed). Workers exit when the coordinator's
  socket closes (and, on Linux, get SIGTERM when it dies), so no process is left behind.

Wire format between coordinator and a worker process: frames of a 4-byte big-endian length, one type byte and
a payload (orjson, or raw JSONL for record batches) over a Unix socket pair, read with asyncio streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from evalscope.engine.client import Client, yield_then
from evalscope.engine.records import Request, RequestRecord
from evalscope.engine.redact import register_secret
from evalscope.engine.session import Timeouts
from evalscope.errors import EvalscopeError
from evalscope.perf.aggregate import Aggregator, Metric
from evalscope.perf.config import PerfConfig
from evalscope.perf.coverage import count_queued, past_deadline
from evalscope.perf.fidelity import CpuMeter, LoopLagMonitor, MachineMeter, verdict
from evalscope.perf.runner import MIN_COMPLETED_FOR_RATE, PerfRun, Reporter, StageState
from evalscope.perf.schedule import SLOT_DEADLINE, SLOT_WAITED, acquire_slot, arrival_offsets_ns, sleep_until
from evalscope.perf.storage import encode_record
from evalscope.perf.summary import stage_summary

_clock = time.perf_counter_ns

# ---- messages (one type byte) ----------------------------------------------------------------------------
HELLO = b"h"  # worker -> coordinator: ready {pid, host, boot_id}
RECORDS = b"r"  # worker -> coordinator: JSONL lines
PROGRESS = b"p"  # worker -> coordinator: small live counters
DONE = b"d"  # worker -> coordinator: stage finished {state, cpu, dispatch stats}
ERROR = b"e"  # worker -> coordinator: a traceback; the run fails
EOF = b"\x00"  # (local) the worker's connection closed
STAGE = b"s"  # coordinator -> worker: run a stage {spec}
STOP = b"x"  # coordinator -> worker: stop dispatching {abort, limit_ns}
QUIT = b"q"  # coordinator -> worker: exit

#: Workers start a stage this long after the coordinator decided to (so they all start at the same t0).
START_DELAY_NS = 50_000_000
#: Extra lead time before a stage's start when workers first open their connections (--prewarm).
PREWARM_ALLOWANCE_NS = 500_000_000
#: Workers send records and progress this often (and records sooner when this many are waiting).
SEND_INTERVAL_NS = 250_000_000
SEND_LINES = 1024
#: ``auto``: streamed events per second one worker's event loop handles comfortably, and parallel streams.
EVENTS_PER_WORKER = 40_000
PARALLEL_PER_WORKER = 64

_HEADER = struct.Struct(">I")


def frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload) + 1) + kind + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One frame; raises ``asyncio.IncompleteReadError`` when the peer has gone."""
    (n,) = _HEADER.unpack(await reader.readexactly(4))
    data = await reader.readexactly(n)
    return data[:1], data[1:]


def boot_id() -> str:
    """Identifies this boot of this machine: equal boot ids share one CLOCK_MONOTONIC."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return f"{socket.gethostname()}:{os.getpid()}"  # unknown: never assume a shared clock


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(cfg: PerfConfig, local_simulator: bool) -> tuple[int, str]:
    """Number of workers and how it was chosen (printed in the header).

    ``auto``: ``ceil(max(max parallel / 64, expected events/s / 40,000))``, where expected events/s is
    ``--rate`` x ``--max-tokens`` (open loop only; closed loop is sized by its parallel streams), clamped to
    [1, usable CPUs], minus one CPU when the built-in simulator runs on this machine. ``--ray`` without
    ``--workers``: 2 actors.
    """
    if cfg.workers != "auto":
        if cfg.ray is not None and "workers" not in cfg.model_fields_set:
            return 2, "2 Ray actors (default with --ray; --workers N to change)"
        n = int(cfg.workers)
        return n, f"{n} (--workers)"
    cpus = usable_cpus()
    budget = max(1, cpus - 1 if local_simulator else cpus)
    max_par = max(cfg.parallel)
    need = max_par / PARALLEL_PER_WORKER
    if cfg.rate is not None:
        need = max(need, cfg.rate * (cfg.max_tokens or 256) / EVENTS_PER_WORKER)
    n = max(1, min(budget, math.ceil(need)))
    why = (
        f"auto: ceil(max(parallel {max_par}/{PARALLEL_PER_WORKER}"
        + (f", rate x max_tokens/{EVENTS_PER_WORKER}" if cfg.rate is not None else "")
        + f")) capped at {budget} usable CPU{'s' if budget != 1 else ''}"
        + (" (one left for the simulator)" if local_simulator else "")
    )
    return n, f"{n} ({why})"


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` integers differing by at most one (the larger first)."""
    q, r = divmod(total, parts)
    return [q + (1 if k < r else 0) for k in range(parts)]


# =========================================================================================================
# The worker side: one event loop, one HTTP session, one aggregator per stage
# =========================================================================================================


class SharedCounter:
    """Request indices handed out across processes: ``claim()`` is one locked increment in shared memory."""

    def __init__(self, value: Any) -> None:
        self._v = value  # multiprocessing.Value("q")

    def claim(self, limit: int | None) -> int | None:
        with self._v.get_lock():
            i = int(self._v.value)
            if limit is not None and i >= limit:
                return None
            self._v.value = i + 1
            return i

    def reset(self) -> None:
        with self._v.get_lock():
            self._v.value = 0


class _Strided:
    """Indices ``rank, rank + active, ...`` (no shared state: used by Ray actors and open loop)."""

    def __init__(self, rank: int, active: int) -> None:
        self._next = rank
        self._step = active

    def claim(self, limit: int | None) -> int | None:
        i = self._next
        if limit is not None and i >= limit:
            return None
        self._next += self._step
        return i


class _WorkerStage:
    __slots__ = (
        "agg",
        "cap",
        "cap_waits",
        "cut_at_deadline",
        "deadline_ns",
        "dispatched",
        "first_sched_ns",
        "first_sent_ns",
        "id_base",
        "in_flight",
        "index",
        "last_sched_ns",
        "last_sent_ns",
        "number",
        "prompt_base",
        "rate",
        "reconnects",
        "t0_ns",
        "warmup",
        "warmup_done",
    )

    def __init__(self, spec: dict[str, Any], agg: Aggregator | None, offset_ns: int) -> None:
        self.index: int = spec["index"]
        self.warmup: bool = spec["warmup"]
        self.rate: float | None = spec["rate"]
        self.number: int | None = spec["number"]
        self.cap: int = spec["cap"]
        self.t0_ns: int = spec["t0_ns"] - offset_ns
        self.deadline_ns: int | None = (
            None if spec["deadline_ns"] is None else spec["deadline_ns"] - offset_ns
        )
        self.id_base: int = spec["id_base"]
        self.prompt_base: int = spec["prompt_base"]
        self.agg = agg
        self.in_flight: set[asyncio.Task[None]] = set()
        self.dispatched = 0
        self.cap_waits = 0
        self.reconnects = 0
        self.cut_at_deadline = False
        self.warmup_done = [0, 0, 0]  # ok, failed, cancelled (warm-up has no aggregator)
        self.first_sent_ns: int | None = None
        self.last_sent_ns: int | None = None
        self.first_sched_ns: int | None = None
        self.last_sched_ns: int | None = None


_ABS_FIELDS = (
    "scheduled_ns",
    "sent_ns",
    "first_byte_ns",
    "first_choice_ns",
    "first_token_ns",
    "first_content_ns",
    "last_token_ns",
    "end_ns",
)


class WorkerCore:
    """The load of one worker for each stage it is given; output goes through ``emit(kind, payload)``.

    Args:
        setup: ``cfg`` (PerfConfig), ``url``, ``model``, ``api_key``, ``worker`` (id), ``coord_boot_id`` and
            ``coord_now_ns`` (to translate the coordinator's clock when the worker runs on another machine).
        emit: sends one message to the coordinator (never blocks).
        counter: the shared request counter (processes), or None (strided indices: Ray actors).
    """

    def __init__(
        self, setup: dict[str, Any], emit: Callable[[bytes, bytes], None], counter: SharedCounter | None
    ) -> None:
        self.cfg: PerfConfig = setup["cfg"]
        self.setup = setup
        self.worker: int = setup["worker"]
        self.emit = emit
        self.counter = counter
        # coordinator clock = worker clock + offset (0 on the same machine: one CLOCK_MONOTONIC)
        same_clock = setup.get("coord_boot_id") == boot_id()
        self.offset_ns = 0 if same_clock else int(setup.get("coord_now_ns", 0)) - _clock()
        self.client: Client | None = None
        self.stage: _WorkerStage | None = None
        self._prompts: Iterator[Any] = iter(())
        self._prompt_pos = 0
        self._describe: dict[str, Any] = {}
        self._dataset: Any = None
        self._tokenizer: Any = None
        self._out: list[bytes] = []
        self._last_send = 0
        self._stopping = asyncio.Event()
        self._abort = False
        self._stop_limit_ns: int | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._monitor: LoopLagMonitor | None = None
        self._params: dict[str, Any] | None = None

    async def open(self) -> dict[str, Any]:
        from evalscope.perf.datasets import DATASETS
        from evalscope.perf.tokenizer import get_tokenizer

        cfg = self.cfg
        api_key = self.setup.get("api_key")
        if api_key:
            register_secret(api_key)
        self._tokenizer = get_tokenizer(cfg.tokenizer_path)
        self._dataset = DATASETS.get(cfg.dataset)(cfg, self._tokenizer)
        self._prompts = self._dataset.prompts()
        params: dict[str, Any] = {}
        if cfg.temperature is not None:
            params["temperature"] = cfg.temperature
        if cfg.top_p is not None:
            params["top_p"] = cfg.top_p
        params.update(cfg.extra_args)
        self._params = params or None
        self.client = Client(
            self.setup["url"],
            self.setup["model"],
            api=cfg.api,
            api_key=api_key,
            headers=cfg.headers,
            timeouts=Timeouts(cfg.connect_timeout, cfg.read_timeout, cfg.total_timeout),
            stream=cfg.stream,
            keep_text=cfg.save_responses,
            continuous_usage=cfg.continuous_usage,
            send_request_id=self.setup.get("simulator"),  # the coordinator's answer: no probe per worker
            worker=self.worker,
        )
        await self.client.__aenter__()
        self._monitor = LoopLagMonitor(self._lag_sink, self._on_tick)
        self._monitor.start()
        return {"pid": os.getpid(), "host": socket.gethostname(), "offset_ns": self.offset_ns}

    async def close(self) -> None:
        if self._monitor is not None:
            await self._monitor.stop()
            self._monitor = None
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    # ---- control ------------------------------------------------------------------------------------

    def stop(self, abort: bool, limit_ns: int | None) -> None:
        """Stop dispatching for the rest of the run; drain until ``limit_ns`` (coordinator clock) or abort."""
        self._abort = self._abort or abort
        if limit_ns is not None:
            self._stop_limit_ns = limit_ns - self.offset_ns
        self._stopping.set()
        if self._dispatcher is not None and not self._dispatcher.done():
            self._dispatcher.cancel()

    # ---- monitoring ----------------------------------------------------------------------------------

    def _lag_sink(self) -> Metric | None:
        st = self.stage
        return None if st is None or st.agg is None else st.agg.loop_lag

    _last_sample = 0

    def _on_tick(self, now: int) -> None:
        st = self.stage
        if st is not None and st.agg is not None and now - self._last_sample >= 500_000_000:
            self._last_sample = now
            st.agg.sample_in_flight(now, len(st.in_flight))
        if now - self._last_send >= SEND_INTERVAL_NS:
            self._last_send = now
            self._send_records()
            if st is not None:
                self.emit(PROGRESS, orjson.dumps(self._progress(st)))

    def _progress(self, st: _WorkerStage) -> dict[str, Any]:
        agg = st.agg
        if agg is None:
            ok, failed, cancelled = st.warmup_done
            return {"stage": st.index, "ok": ok, "failed": failed, "cancelled": cancelled, "in_flight": 0}
        tl = agg.timeline
        return {
            "stage": st.index,
            "ok": agg.succeeded,
            "failed": agg.failed,
            "cancelled": agg.cancelled,
            "in_flight": len(st.in_flight),
            "dispatched": st.dispatched,
            "last_second": tl[-2] if len(tl) >= 2 else None,
            "ttft_p50": agg.metrics["ttft"].percentile_ms(50),
            "e2e_p50": agg.metrics["e2e_latency"].percentile_ms(50),
        }

    def _send_records(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            self.emit(RECORDS, data)

    # ---- a stage ------------------------------------------------------------------------------------

    async def run_stage(self, spec: dict[str, Any]) -> None:
        try:
            await self._run_stage(spec)
        except Exception:  # noqa: BLE001 - reported to the coordinator, which fails the run
            self.emit(ERROR, traceback.format_exc().encode())

    async def _run_stage(self, spec: dict[str, Any]) -> None:
        cfg = self.cfg
        agg = (
            None
            if spec["warmup"]
            else Aggregator(spec["t0_ns"] - self.offset_ns, cfg.metric_profile, cfg.goodput)
        )
        st = _WorkerStage(spec, agg, self.offset_ns)
        if spec["shared_counter"] and self.counter is not None:
            src: SharedCounter | _Strided = self.counter
        else:
            src = _Strided(spec["rank"], spec["active"])
        cpu = CpuMeter()
        n_warm = cfg.prewarm_count(spec.get("parallel", st.cap)) if not st.warmup else 0
        if n_warm and self.client is not None:
            # This worker's share, and never past the stage's start time (the schedule is the coordinator's).
            share = max(1, round(n_warm * st.cap / max(1, cfg.concurrency_cap(spec.get("parallel", st.cap)))))
            left_s = (st.t0_ns - _clock()) / 1e9 - 0.05
            if left_s > 0.05:
                await self.client.prewarm(min(share, n_warm), timeout_s=left_s)
        if st.t0_ns > _clock():
            await sleep_until(st.t0_ns)
        cpu.reset()
        self.stage = st
        if not self._stopping.is_set():
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(st, src, spec))
            try:
                await self._dispatcher
            except asyncio.CancelledError:
                if not self._stopping.is_set() and st.deadline_ns is None:
                    raise
            self._dispatcher = None
        await self._drain(st)
        self._send_records()
        done: dict[str, Any] = {
            "stage": st.index,
            "warmup": st.warmup,
            "dispatched": st.dispatched,
            "cap_waits": st.cap_waits,
            "reconnects": st.reconnects,
            "cpu_percent": cpu.percent(),
            "cpu_seconds": cpu.cpu_seconds(),
            "wait_percent": cpu.wait_percent(),
            "first_sent_ns": _shift(st.first_sent_ns, self.offset_ns),
            "last_sent_ns": _shift(st.last_sent_ns, self.offset_ns),
            "first_sched_ns": _shift(st.first_sched_ns, self.offset_ns),
            "last_sched_ns": _shift(st.last_sched_ns, self.offset_ns),
            "prompts_used": self._prompt_pos,
            "dataset": self._dataset.describe() if self._dataset is not None else {},
            "state": None,
        }
        if agg is not None:
            state = agg.to_state()
            if self.offset_ns:
                state["t0_ns"] = spec["t0_ns"]
                for k in ("first_sent_ns", "last_end_ns"):
                    state["counters"][k] = _shift(state["counters"][k], self.offset_ns)
            done["state"] = state
        self.stage = None
        self.emit(DONE, orjson.dumps(done, option=orjson.OPT_SERIALIZE_NUMPY))

    def _prompt_at(self, idx: int) -> Any:
        """Prompt number ``idx`` of the seeded dataset (indices claimed by one worker only increase)."""
        skip = idx - self._prompt_pos
        if skip < 0:
            raise RuntimeError(f"prompt {idx} requested after {self._prompt_pos}")
        p = next(itertools.islice(self._prompts, skip, None))
        self._prompt_pos = idx + 1
        return p

    async def _dispatch(self, st: _WorkerStage, src: SharedCounter | _Strided, spec: dict[str, Any]) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(st.cap)
        number = st.number
        deadline = st.deadline_ns
        arrivals: Iterator[int] | None = None
        if st.rate is not None:
            offsets = arrival_offsets_ns(
                st.rate, cfg.burstiness, cfg.seed + max(0, st.index), cfg.constant_rate
            )
            arrivals = itertools.islice(offsets, spec["rank"], None, spec["active"])
        t0 = st.t0_ns
        while True:
            due = 0
            i = -1
            if arrivals is not None:
                claimed = src.claim(number)  # strided: i-th arrival of the stage
                if claimed is None:
                    break
                i = claimed
                due = t0 + next(arrivals)
                if deadline is not None and due >= deadline:
                    break
                if due > _clock():
                    await sleep_until(due)
            elif deadline is not None and _clock() >= deadline:
                break
            slot = await acquire_slot(sem, deadline)
            if slot == SLOT_DEADLINE:
                st.cap_waits += 1
                if arrivals is not None and deadline is not None and st.agg is not None:
                    more = lambda: src.claim(number) is not None  # noqa: E731
                    count_queued(st.agg.coverage, due, arrivals, t0, deadline, more)
                break
            if slot == SLOT_WAITED:
                st.cap_waits += 1
            if arrivals is None:
                claimed = src.claim(number)  # closed loop: claim only once a slot is free
                if claimed is None:
                    sem.release()
                    break
                i = claimed
            slot_ns = _clock()
            scheduled = due if arrivals is not None else slot_ns
            p = self._prompt_at(st.prompt_base + i)
            rid: int | str = f"warmup-{i}" if st.warmup else st.id_base + i
            req = Request(
                request_id=rid,
                prompt=p.prompt,
                messages=p.messages,
                max_tokens=p.max_tokens,
                min_tokens=cfg.min_tokens,
                params=self._params,
                prompt_tokens=p.prompt_tokens,
                scheduled_ns=scheduled,
            )
            if st.first_sched_ns is None:
                st.first_sched_ns = scheduled
            st.last_sched_ns = scheduled
            st.dispatched += 1
            task = loop.create_task(self._one(st, sem, req, slot_ns))
            st.in_flight.add(task)

    async def _one(self, st: _WorkerStage, sem: asyncio.Semaphore, req: Request, slot_ns: int) -> None:
        task = asyncio.current_task()
        assert self.client is not None
        try:
            rec = await self.client.send(req, on_cancel=lambda r: self._on_record(st, r, slot_ns))
            await yield_then(self._on_record, st, rec, slot_ns)
        except asyncio.CancelledError:
            pass
        finally:
            sem.release()
            if task is not None:
                st.in_flight.discard(task)

    def _on_record(self, st: _WorkerStage, rec: RequestRecord, slot_ns: int) -> None:
        if st.first_sent_ns is None or rec.sent_ns < st.first_sent_ns:
            st.first_sent_ns = rec.sent_ns
        if st.last_sent_ns is None or rec.sent_ns > st.last_sent_ns:
            st.last_sent_ns = rec.sent_ns
        d = rec.to_dict()
        d["stage"] = st.index
        if st.warmup:
            d["warmup"] = True
        if self.offset_ns:
            for k in _ABS_FIELDS:
                if d[k] is not None:
                    d[k] += self.offset_ns
        self._out.append(encode_record(d, self.cfg.save_responses))
        if len(self._out) >= SEND_LINES:
            self._send_records()
        agg = st.agg
        if agg is None:
            st.warmup_done[0 if rec.status == "ok" else 1 if rec.status == "error" else 2] += 1
            return
        if rec.reconnects:
            st.reconnects += rec.reconnects
        agg.add(rec)
        if st.cut_at_deadline and rec.status == "cancelled" and st.deadline_ns is not None:
            agg.coverage.add_in_flight(rec.scheduled_ns, st.deadline_ns)
        if rec.text is not None and rec.status == "ok" and rec.token_source == "usage":
            agg.add_token_check(
                (rec.completion_tokens or 0) - (rec.reasoning_tokens or 0), self._tokenizer.count(rec.text)
            )
        if st.rate is not None and rec.status != "cancelled":
            agg.dispatch_lag.record(max(0, rec.sent_ns - max(rec.scheduled_ns, slot_ns)))

    async def _drain(self, st: _WorkerStage) -> None:
        """As :meth:`PerfRun._drain`: wait for in-flight requests until the deadline / drain limit / abort."""
        pending = set(st.in_flight)
        if pending:
            all_done = asyncio.ensure_future(asyncio.wait(pending))
            while not all_done.done():
                now = _clock()
                limit: int | None = None
                if self._abort:
                    limit = now
                elif self._stop_limit_ns is not None:
                    limit = self._stop_limit_ns
                if st.deadline_ns is not None:
                    limit = st.deadline_ns if limit is None else min(limit, st.deadline_ns)
                if limit is not None and now >= limit:
                    break
                timeout = None if limit is None else (limit - now) / 1e9
                waiter = None if self._stopping.is_set() else asyncio.ensure_future(self._stopping.wait())
                aws: set[asyncio.Future[Any]] = {all_done}
                if waiter is not None:
                    aws.add(waiter)
                await asyncio.wait(aws, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if waiter is not None:
                    waiter.cancel()
            if not all_done.done():
                all_done.cancel()
        # let requests created in the last dispatch step start, so that cancelling them leaves a record
        await asyncio.sleep(0)
        rest = set(st.in_flight)
        st.cut_at_deadline = bool(rest) and past_deadline(st.deadline_ns, self._abort)
        for t in rest:
            t.cancel()
        if rest:
            await asyncio.gather(*rest, return_exceptions=True)


def _shift(v: int | None, offset: int) -> int | None:
    return None if v is None else v + offset


# ---- the worker process ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the coordinator dies (belt and braces next to the socket EOF)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def process_main(worker: int, sock: socket.socket, counter: Any, setup: dict[str, Any]) -> None:
    """Entry point of a worker process (spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides; Ctrl-C reaches the whole group
    _die_with_parent()
    from evalscope.engine.session import run

    try:
        run(_process_async(worker, sock, SharedCounter(counter), setup))
    except BaseException:  # noqa: BLE001 - a worker must exit, never linger
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


async def _process_async(
    worker: int, sock: socket.socket, counter: SharedCounter, setup: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)

    def emit(kind: bytes, payload: bytes) -> None:
        if not writer.is_closing():
            writer.write(frame(kind, payload))

    async def drainer() -> None:
        while True:
            await asyncio.sleep(0.05)
            await writer.drain()

    core = WorkerCore(setup, emit, counter)
    drain_task = asyncio.get_running_loop().create_task(drainer())
    stage_task: asyncio.Task[None] | None = None
    try:
        try:
            hello = await core.open()
        except Exception:  # noqa: BLE001 - reported, then exit
            emit(ERROR, traceback.format_exc().encode())
            return
        emit(HELLO, orjson.dumps(hello))
        while True:
            try:
                kind, payload = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                core.stop(True, None)  # the coordinator is gone: stop everything
                break
            if kind == STAGE:
                stage_task = asyncio.get_running_loop().create_task(core.run_stage(orjson.loads(payload)))
            elif kind == STOP:
                d = orjson.loads(payload)
                core.stop(bool(d["abort"]), d.get("limit_ns"))
            elif kind == QUIT:
                break
        if stage_task is not None:
            await stage_task
    finally:
        await core.close()
        drain_task.cancel()
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()
            await writer.wait_closed()


# =========================================================================================================
# The coordinator side
# =========================================================================================================

OnMessage = Callable[[int, bytes, bytes], None]


class WorkerPool:
    """How the coordinator talks to its workers (processes here, Ray actors in ray_backend.py)."""

    backend = "processes"

    def __init__(self, n: int) -> None:
        self.n = n
        self.pids: list[int] = []
        self.hellos: list[dict[str, Any]] = []

    @property
    def shared_counter(self) -> bool:
        return False

    @property
    def local_pids(self) -> list[int]:
        """Worker PIDs on this machine (signalled on a second Ctrl-C)."""
        return list(self.pids)

    def reset_counter(self) -> None: ...

    async def start(self, setups: list[dict[str, Any]], on_message: OnMessage) -> None:
        raise NotImplementedError

    def start_stage(self, k: int, spec: dict[str, Any]) -> None:
        raise NotImplementedError

    def stop(self, abort: bool, limit_ns: int | None) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """Synchronous last resort (errors, second Ctrl-C): end every worker now."""


class ProcessPool(WorkerPool):
    """N ``spawn`` processes, each connected by a Unix socket pair."""

    backend = "processes"

    def __init__(self, n: int) -> None:
        super().__init__(n)
        import multiprocessing as mp

        self._ctx = mp.get_context("spawn")
        self._counter = self._ctx.Value("q", 0)
        self._procs: list[Any] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._readers: list[asyncio.Task[None]] = []

    @property
    def shared_counter(self) -> bool:
        return True

    def reset_counter(self) -> None:
        SharedCounter(self._counter).reset()

    async def start(self, setups: list[dict[str, Any]], on_message: OnMessage) -> None:
        hello: list[asyncio.Future[dict[str, Any]]] = []
        loop = asyncio.get_running_loop()
        for k, setup in enumerate(setups):
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            p = self._ctx.Process(
                target=process_main,
                args=(k, theirs, self._counter, setup),
                name=f"evalscope-perf-worker-{k}",
                daemon=True,
            )
            p.start()
            theirs.close()
            self._procs.append(p)
            self.pids.append(int(p.pid or 0))
            reader, writer = await asyncio.open_unix_connection(sock=mine)
            self._writers.append(writer)
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            hello.append(fut)
            self._readers.append(loop.create_task(self._read(k, reader, on_message, fut)))
        self.hellos = list(await asyncio.wait_for(asyncio.gather(*hello), 120))

    async def _read(
        self,
        k: int,
        reader: asyncio.StreamReader,
        on_message: OnMessage,
        hello: asyncio.Future[dict[str, Any]],
    ) -> None:
        while True:
            try:
                kind, payload = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                kind, payload = EOF, b""
            if not hello.done():
                if kind == HELLO:
                    hello.set_result(orjson.loads(payload))
                    continue
                if kind == ERROR:
                    hello.set_exception(
                        EvalscopeError(
                            f"perf worker {k} failed to start: {payload.decode(errors='replace').strip()[-2000:]}"
                        )
                    )
                else:
                    hello.set_exception(
                        EvalscopeError(
                            f"perf worker {k} exited before it was ready (its error is on stderr above)",
                            "from a script, call run_perf(..., workers=N) under if __name__ == '__main__': "
                            "worker processes are started with spawn, which imports the main module",
                        )
                    )
                return
            on_message(k, kind, payload)
            if kind == EOF:
                return

    def _send(self, k: int, kind: bytes, payload: bytes) -> None:
        w = self._writers[k]
        if not w.is_closing():
            w.write(frame(kind, payload))

    def start_stage(self, k: int, spec: dict[str, Any]) -> None:
        self._send(k, STAGE, orjson.dumps(spec))

    def stop(self, abort: bool, limit_ns: int | None) -> None:
        payload = orjson.dumps({"abort": abort, "limit_ns": limit_ns})
        for k in range(len(self._writers)):
            self._send(k, STOP, payload)

    async def close(self) -> None:
        for k in range(len(self._writers)):
            self._send(k, QUIT, b"")
        deadline = time.monotonic() + 10.0
        while any(p.is_alive() for p in self._procs) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        self.kill()
        for t in self._readers:
            t.cancel()
        for w in self._writers:
            with contextlib.suppress(Exception):
                w.close()

    def kill(self) -> None:
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join(2.0)
            if p.is_alive():
                p.kill()
                p.join(2.0)


class _FixedP50(Metric):
    """Live view only: a metric that answers one stored median."""

    __slots__ = ("_p50",)

    def __init__(self, p50: float | None) -> None:
        super().__init__()
        self._p50 = p50

    def percentile_ms(self, p: float) -> float | None:
        return self._p50


class _Count(set[asyncio.Task[None]]):
    """Live view only: ``len()`` is the in-flight count the workers last reported."""

    n = 0

    def __len__(self) -> int:
        return self.n


class WorkerRun(PerfRun):
    """A perf run whose load runs in worker processes or Ray actors; this process coordinates."""

    def __init__(
        self,
        cfg: PerfConfig,
        dataset: Any,
        tokenizer: Any,
        url: str,
        api_key: str | None,
        reporter: Reporter,
        simulator: dict[str, Any] | None,
        pool: WorkerPool,
        how: str,
    ) -> None:
        super().__init__(cfg, dataset, tokenizer, url, api_key, reporter, simulator)
        self.pool = pool
        self.how = how
        self._prompts_used = 0
        self._describe: tuple[int, dict[str, Any]] = (-1, {})
        self._done: dict[int, dict[str, Any]] = {}
        self._progress: dict[int, dict[str, Any]] = {}
        self._stage_waiter: asyncio.Future[None] | None = None
        self._active = 0
        self._failure: str | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------

    async def main(self) -> dict[str, Any]:
        cfg = self.cfg
        client = Client(
            self.url,
            self.model,
            api=cfg.api,
            api_key=self.api_key,
            headers=cfg.headers,
            timeouts=Timeouts(cfg.connect_timeout, cfg.read_timeout, cfg.total_timeout),
            stream=cfg.stream,
        )
        from evalscope.perf.runner import _first_served_model

        async with client:
            if cfg.test_connection:
                from evalscope.engine.preflight import preflight

                pf = await preflight(client)
                self.served_models = pf.served_models
            elif not client.model:
                client.model = await _first_served_model(client)
            self.model = client.model
            simulator = await client.identify()
        setup = {
            "cfg": cfg,
            "url": self.url,
            "model": self.model,
            "api_key": self.api_key,
            "simulator": simulator,
            "coord_boot_id": boot_id(),
            "coord_now_ns": _clock(),
        }
        try:
            await self.pool.start([{**setup, "worker": k} for k in range(self.pool.n)], self._on_message)
            self._kill_on_exit.extend(self.pool.local_pids)
            self._open_run_dir()
            self.start_scraper()
            self.reporter.header(self._header_info())
            self.reporter.message(f"workers  {self.pool.backend}: {self.how}")
            self._install_signals()
            ticker = asyncio.get_running_loop().create_task(self._ticker())
            try:
                if cfg.warmup:
                    await self._run_worker_stage(-1, cfg.stages()[0][0], cfg.warmup, warmup=True)
                for i, (parallel, number) in enumerate(cfg.stages()):
                    if self._stopping.is_set():
                        break
                    if i > 0 and cfg.sleep_interval > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stopping.wait(), cfg.sleep_interval)
                        if self._stopping.is_set():
                            break
                    await self._run_worker_stage(i, parallel, number)
                if self.status == "running":
                    self.status = "completed"
            except BaseException:
                if self.status in ("running", "interrupted"):
                    self.status = "failed"
                raise
            finally:
                ticker.cancel()
                await self.stop_scraper()
                self._remove_signals()
        finally:
            try:
                await self.pool.close()
            finally:
                self.pool.kill()
                self._finalize()
        return self.final_summary if self.final_summary is not None else self.summary()

    def _header_info(self) -> dict[str, Any]:
        info = super()._header_info()
        info["workers"] = {"backend": self.pool.backend, "count": self.pool.n, "how": self.how}
        return info

    def summary(self) -> dict[str, Any]:
        s = super().summary()
        if self._describe[0] >= 0:
            s["dataset"] = {"name": self.cfg.dataset, **self._describe[1]}
        s["workers"] = {
            "backend": self.pool.backend,
            "count": self.pool.n,
            "how": self.how,
            "pids": list(self.pool.pids),
            "hosts": sorted({str(h.get("host")) for h in self.pool.hellos}),
        }
        return s

    def _stop_dispatch(self) -> None:
        self._stopping.set()
        if self.status == "aborted":
            self.pool.stop(True, None)
        elif self.status == "interrupted" and self._interrupt_ns is not None:
            self.pool.stop(False, self._interrupt_ns + int(self.cfg.drain_timeout * 1e9))
        else:
            self.pool.stop(False, None)
        self._wake()

    def _wake(self) -> None:
        w = self._stage_waiter
        if w is not None and not w.done() and (self._failure is not None or len(self._done) >= self._active):
            w.set_result(None)

    # ---- messages from workers --------------------------------------------------------------------------

    def _on_message(self, k: int, kind: bytes, payload: bytes) -> None:
        if kind == RECORDS:
            if self.writer is not None:
                self.writer.add_lines(payload)
        elif kind == PROGRESS:
            self._progress[k] = orjson.loads(payload)
            self._check_errors()
        elif kind == DONE:
            d = orjson.loads(payload)
            self._done[k] = d
            if int(d["prompts_used"]) > self._describe[0]:
                self._describe = (int(d["prompts_used"]), d["dataset"])
            self._wake()
        elif kind == ERROR:
            self._fail(f"perf worker {k} failed:\n{payload.decode(errors='replace')}")
        elif kind == EOF:
            st = self.stage
            if st is not None and k < self._active and k not in self._done:
                self._fail(f"perf worker {k} exited during a stage")

    def _fail(self, msg: str) -> None:
        if self._failure is None:
            self._failure = msg
            self.pool.stop(True, None)
        self._wake()

    def _check_errors(self) -> None:
        st = self.stage
        if st is None or st.warmup or self.status != "running":
            return
        cur = [p for p in self._progress.values() if p.get("stage") == st.index]
        failed = sum(int(p["failed"]) for p in cur)
        ok = sum(int(p["ok"]) for p in cur)
        cfg = self.cfg
        if cfg.max_errors is not None and failed >= cfg.max_errors:
            self._abort(f"{failed} failed requests reached --max-errors {cfg.max_errors}")
        elif cfg.max_error_rate is not None:
            done = ok + failed
            if done >= MIN_COMPLETED_FOR_RATE and failed / done > cfg.max_error_rate:
                self._abort(
                    f"error rate {failed / done:.1%} exceeded --max-error-rate {cfg.max_error_rate:g}"
                )

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._update_live()
            if self.writer is not None:
                self.writer.maybe_flush()
            self.reporter.tick(self)

    def _update_live(self) -> None:
        st = self.stage
        if st is None or st.warmup:
            return
        cur = [p for p in self._progress.values() if p.get("stage") == st.index]
        agg = st.agg
        agg.succeeded = sum(int(p["ok"]) for p in cur)
        agg.failed = sum(int(p["failed"]) for p in cur)
        agg.cancelled = sum(int(p["cancelled"]) for p in cur)
        if isinstance(st.in_flight, _Count):
            st.in_flight.n = sum(int(p["in_flight"]) for p in cur)
        row = [0, 0, 0, 0]
        for p in cur:
            if p.get("last_second"):
                row = [a + int(b) for a, b in zip(row, p["last_second"], strict=True)]
        agg.timeline = [row, [0, 0, 0, 0]]
        for name, key in (("ttft", "ttft_p50"), ("e2e_latency", "e2e_p50")):
            vals = [(float(p[key]), int(p["ok"])) for p in cur if p.get(key) is not None]
            n = sum(w for _, w in vals)
            agg.metrics[name] = _FixedP50(sum(v * w for v, w in vals) / n if n else None)

    # ---- a stage ------------------------------------------------------------------------------------------

    async def _run_worker_stage(
        self, index: int, parallel: int, number: int | None, warmup: bool = False
    ) -> None:
        cfg = self.cfg
        cap = parallel if warmup else cfg.concurrency_cap(parallel)
        rate = None if warmup else cfg.rate
        active = min(self.pool.n, cap)
        caps = split_evenly(cap, active)
        # Leave the workers time to open their connections (--prewarm) before the common start time.
        t0 = (
            _clock()
            + START_DELAY_NS
            + (PREWARM_ALLOWANCE_NS if not warmup and cfg.prewarm_count(parallel) else 0)
        )
        deadline = t0 + int(cfg.duration * 1e9) if cfg.duration is not None and not warmup else None
        st = StageState(index, parallel, cap, number, Aggregator(t0, cfg.metric_profile, cfg.goodput))
        st.warmup = warmup
        st.deadline_ns = deadline
        st.in_flight = _Count()
        self.stage = st
        self._done = {}
        self._progress = {}
        self._active = active
        if not warmup:
            if self.scraper is not None:
                self.scraper.begin_stage(index)
            self.reporter.stage_start(self, index, parallel, number)
        cpu = CpuMeter()
        machine = MachineMeter()
        self.pool.reset_counter()
        rec_offset = self._records_offset()
        id_base = 0 if warmup else self._next_id
        for k in range(active):
            spec = {
                "index": index,
                "warmup": warmup,
                "rate": rate,
                "number": number,
                "cap": caps[k],
                "parallel": parallel,
                "t0_ns": t0,
                "deadline_ns": deadline,
                "id_base": id_base,
                "prompt_base": self._prompts_used,
                "rank": k,
                "active": active,
                "shared_counter": self.pool.shared_counter and rate is None,
            }
            self.pool.start_stage(k, spec)
        self._stage_waiter = asyncio.get_running_loop().create_future()
        self._wake()
        await self._stage_waiter
        self._stage_waiter = None
        if self._failure is not None:
            raise EvalscopeError(self._failure)
        done = [self._done[k] for k in range(active)]
        dispatched = sum(int(d["dispatched"]) for d in done)
        self._prompts_used += dispatched
        if warmup:
            self.stage = None
            return
        self._next_id += dispatched
        agg = Aggregator(t0, cfg.metric_profile, cfg.goodput)
        for d in done:
            if d["state"] is not None:
                agg.merge(Aggregator.from_state(d["state"]))

        def _min(key: str) -> int | None:
            vals = [int(d[key]) for d in done if d[key] is not None]
            return min(vals) if vals else None

        def _max(key: str) -> int | None:
            vals = [int(d[key]) for d in done if d[key] is not None]
            return max(vals) if vals else None

        first_sent, last_sent = _min("first_sent_ns"), _max("last_sent_ns")
        first_sched, last_sched = _min("first_sched_ns"), _max("last_sched_ns")
        cap_waits = sum(int(d["cap_waits"]) for d in done)
        achieved = scheduled = None
        if rate is not None and dispatched > 1:
            if first_sent is not None and last_sent is not None and last_sent > first_sent:
                achieved = (dispatched - 1) * 1e9 / (last_sent - first_sent)
            if first_sched is not None and last_sched is not None and last_sched > first_sched:
                scheduled = (dispatched - 1) * 1e9 / (last_sched - first_sched)
        worker_cpu = [round(float(d["cpu_percent"]), 1) for d in done]
        waits = [float(d["wait_percent"]) for d in done if d.get("wait_percent") is not None]
        client_block = verdict(
            agg.loop_lag,
            agg.dispatch_lag,
            max(worker_cpu),
            rate,
            scheduled,
            achieved,
            cap_waits > 0,
            wait_percent=max(waits) if waits else None,
            machine_busy_percent=machine.busy_percent(),
        )
        client_block["cpu_percent"] = round(sum(worker_cpu), 1)  # summed over workers
        client_block["cpu_percent_max_worker"] = max(worker_cpu)
        client_block["worker_cpu_percent"] = worker_cpu
        client_block["coordinator_cpu_percent"] = round(cpu.percent(), 1)
        client_block["cpu_seconds"] = sum(float(d["cpu_seconds"]) for d in done)
        client_block["cap_waits"] = cap_waits
        client_block["reconnects"] = sum(int(d.get("reconnects", 0)) for d in done)
        client_block["workers"] = active
        client_block["backend"] = self.pool.backend
        client_block["worker_requests"] = [int(d["dispatched"]) for d in done]
        if self.pool.backend != "ray":  # Ray actors elsewhere stamp on an estimated clock
            await self._check_send_side(client_block, index, rec_offset, dispatched)
        summary = stage_summary(
            agg,
            stage=index,
            parallel=parallel,
            concurrency_cap=cap,
            rate=rate,
            number=number,
            client=client_block,
            dispatch_start_ns=t0,
            percentiles=tuple(cfg.percentiles),
        )
        if self.scraper is not None:
            summary["server_metrics"] = self.scraper.end_stage()
        self.stage_summaries.append(summary)
        self.stage = None
        self.warn_quirks(summary)
        self.reporter.stage_end(self, summary)


def make_pool(cfg: PerfConfig, n: int) -> WorkerPool:
    """The worker pool for this run: Ray actors with ``--ray``, else processes."""
    if cfg.ray is not None:
        from evalscope.perf.ray_backend import RayPool

        return RayPool(n, cfg.ray)
    return ProcessPool(n)
