"""The one dispatch engine: :class:`WorkerCore` runs the load of one worker for each stage it is given.

In-process runs are a local pool of one core on the coordinator's loop; ``--workers N`` runs one core per
process, ``--ray`` one per actor (see ``_pools.py``, ``ray_backend.py``). The core knows nothing of where it
runs: it takes a stage spec (from the coordinator, who owns the schedule and the stages), dispatches
requests lazily within its share of the concurrency cap, folds every record into its own
:class:`Aggregator` and hands records, progress and the stage result to an :class:`Outbox`.

Request *i* of a stage gets the id ``id_base + i`` and prompt number ``prompt_base + i`` of the seeded
dataset, so that N cores send exactly the requests one would. Closed loop: a free slot claims the next index
from an index source (a shared-memory counter across processes, or strided ``rank + k * active``). Open
loop: every core recomputes the seeded arrival times and takes arrivals ``i % active == rank``; times are
absolute on the coordinator's clock. Nothing is retried (E1).

May import: ``engine`` (client, records, session, redact), ``perf.aggregate``, ``perf.coverage``,
``perf.fidelity``, ``perf.schedule``, ``perf.storage``; ``perf.datasets`` / ``perf.tokenizer`` /
``perf.shapes`` / ``perf.sessions`` lazily.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from typing import Any, Protocol

from evalscope.engine.client import Client, yield_then
from evalscope.engine.records import Request, RequestRecord
from evalscope.engine.redact import register_secret
from evalscope.engine.session import Timeouts
from evalscope.perf._wire import boot_id
from evalscope.perf.aggregate import Aggregator
from evalscope.perf.coverage import count_queued, past_deadline
from evalscope.perf.fidelity import CpuMeter, LoopLagMonitor
from evalscope.perf.histogram import Metric
from evalscope.perf.schedule import SLOT_DEADLINE, SLOT_WAITED, acquire_slot, arrival_offsets_ns, sleep_until
from evalscope.perf.storage import encode_record

_clock = time.perf_counter_ns

#: Cores hand over records and progress this often (and records sooner when this many are waiting).
SEND_INTERVAL_NS = 250_000_000
SEND_LINES = 1024


#: Starts item *i* of a stage: ``(stage, slot semaphore, i, due_ns or None, slot_ns) -> the task's coroutine``;
#: the coroutine releases the slot when it ends.
Launch = Callable[["CoreStage", asyncio.Semaphore, int, int | None, int], Coroutine[Any, Any, None]]


def make_client(cfg: Any, url: str, model: str, api_key: str | None, **more: Any) -> Client:
    """The engine client a perf run uses (the coordinator's probe client and every core's), from its config."""
    return Client(
        url,
        model,
        api=cfg.api,
        api_key=api_key,
        headers=cfg.headers,
        timeouts=Timeouts(cfg.connect_timeout, cfg.read_timeout, cfg.total_timeout),
        stream=cfg.stream,
        keep_text=cfg.save_responses or cfg.multi_turn,  # sessions send the replies back
        continuous_usage=cfg.continuous_usage,
        transport=cfg.transport,
        **more,
    )


class Outbox(Protocol):
    """Where a core's output goes: straight to the coordinator (local pool) or framed over a wire."""

    def records(self, lines: list[bytes]) -> None: ...

    def progress(self, p: dict[str, Any]) -> None: ...

    def done(self, d: dict[str, Any], agg: Aggregator | None) -> None: ...

    def error(self, exc: BaseException | str) -> None: ...


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
    """Indices ``rank, rank + active, ...`` (no shared state: one core, Ray actors, open loop)."""

    def __init__(self, rank: int, active: int) -> None:
        self._next = rank
        self._step = active

    def claim(self, limit: int | None) -> int | None:
        i = self._next
        if limit is not None and i >= limit:
            return None
        self._next += self._step
        return i


class CoreStage:
    """The running stage of one core (its share of the stage)."""

    __slots__ = (
        "agg",
        "busy",
        "cap",
        "cap_waits",
        "cut_at_deadline",
        "deadline_ns",
        "dispatched",
        "duration_ns",
        "first_sched_ns",
        "first_sent_ns",
        "id_base",
        "in_flight",
        "index",
        "last_sched_ns",
        "last_sent_ns",
        "number",
        "p50s",
        "prompt_base",
        "rate",
        "reconnects",
        "slots_stop",
        "slotted",
        "t0_ns",
        "warmup",
        "warmup_done",
    )

    def __init__(self, spec: dict[str, Any], offset_ns: int) -> None:
        self.index: int = spec["index"]
        self.warmup: bool = spec["warmup"]
        self.rate: float | None = spec["rate"]
        self.number: int | None = spec["number"]
        self.cap: int = spec["cap"]
        t0 = spec["t0_ns"]
        self.t0_ns: int | None = None if t0 is None else t0 - offset_ns  # None: start when ready
        self.duration_ns: int | None = spec["duration_ns"]
        self.deadline_ns: int | None = None
        self.id_base: int = spec["id_base"]
        self.prompt_base: int = spec["prompt_base"]
        self.agg: Aggregator | None = None
        self.in_flight: set[asyncio.Task[None]] = set()
        # closed loop runs one long-lived task per slot (WorkerCore._slots): in_flight then holds the slots,
        # ``busy`` counts the requests they have in flight, and ``slots_stop`` tells them to claim no more
        self.busy = 0
        self.slotted = False
        self.slots_stop = False
        self.dispatched = 0
        self.cap_waits = 0
        self.reconnects = 0
        self.cut_at_deadline = False
        self.warmup_done = [0, 0, 0]  # ok, failed, cancelled (warm-up has no aggregator)
        self.first_sent_ns: int | None = None
        self.last_sent_ns: int | None = None
        self.first_sched_ns: int | None = None
        self.last_sched_ns: int | None = None
        self.p50s: tuple[float | None, float | None] = (None, None)  # TTFT and E2E medians of the last tick

    def requests_in_flight(self) -> int:
        return self.busy if self.slotted else len(self.in_flight)

    def start(self, t0_ns: int, agg: Aggregator | None) -> None:
        self.t0_ns = t0_ns
        self.agg = agg
        if self.duration_ns is not None:
            self.deadline_ns = t0_ns + self.duration_ns


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


def _freeze_heap() -> None:
    """Move every object alive at a stage's start (modules, config, dataset, client) out of the cyclic GC's
    reach: a full collection then scans only what the load itself keeps, so the pauses it makes in the
    middle of a measured stage (tens of ms with the heap of imports scanned, measured) become short."""
    import gc

    gc.freeze()


def _shift(v: int | None, offset: int) -> int | None:
    return None if v is None else v + offset


class WorkerCore:
    """The load of one worker for each stage it is given; output goes to ``out``.

    Args:
        setup: ``cfg`` (PerfConfig), ``url``, ``model``, ``api_key``, ``worker`` (id), ``simulator`` (whether
            to send request ids), ``coord_boot_id`` / ``coord_now_ns`` (to translate the coordinator's clock
            on another machine); a local pool also passes ``client``, ``dataset`` and ``tokenizer`` (shared
            with the coordinator, not owned).
        out: where records, progress and stage results go.
        counter: the shared request counter (processes), or None (strided indices).
    """

    def __init__(self, setup: dict[str, Any], out: Outbox, counter: SharedCounter | None) -> None:
        self.cfg: Any = setup["cfg"]
        self.setup = setup
        self.worker: int = setup["worker"]
        self.out = out
        self.counter = counter
        # coordinator clock = worker clock + offset (0 on the same machine: one CLOCK_MONOTONIC)
        same_clock = setup.get("coord_boot_id", boot_id()) == boot_id()
        self.offset_ns = 0 if same_clock else int(setup.get("coord_now_ns", 0)) - _clock()
        self.client: Client | None = None
        self._owns_client = True
        self.stage: CoreStage | None = None
        self._prompts: Iterator[Any] = iter(())
        self._prompt_pos = 0
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
        self._thresholds = self.cfg.max_errors is not None or self.cfg.max_error_rate is not None
        self._sessions: Any = None  # SessionStats of a --multi-turn stage (perf/sessions.py)

    async def open(self) -> dict[str, Any]:
        cfg = self.cfg
        setup = self.setup
        api_key = setup.get("api_key")
        if api_key:
            register_secret(api_key)
        self._tokenizer = setup.get("tokenizer")
        if self._tokenizer is None:
            from evalscope.perf.tokenizer import get_tokenizer

            self._tokenizer = get_tokenizer(cfg.tokenizer_path)
        self._dataset = setup.get("dataset")
        if self._dataset is None:
            from evalscope.perf.datasets import DATASETS, DatasetOptions

            self._dataset = DATASETS.get(cfg.dataset)(DatasetOptions.of(cfg), self._tokenizer)
        self._prompts = self._dataset.prompts()
        params: dict[str, Any] = {}
        if cfg.temperature is not None:
            params["temperature"] = cfg.temperature
        if cfg.top_p is not None:
            params["top_p"] = cfg.top_p
        params.update(cfg.extra_args)
        self._params = params or None
        client = setup.get("client")
        if client is not None:
            self.client, self._owns_client = client, False
        else:
            self.client = make_client(
                cfg,
                setup["url"],
                setup["model"],
                api_key,
                send_request_id=setup.get("simulator"),  # the coordinator's answer: no probe per worker
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
        if self.client is not None and self._owns_client:
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

    def cut_stage(self) -> None:
        """End the running stage now (an over-saturated probe): stop dispatching, cancel what is in flight.

        Unlike :meth:`stop`, later stages still run. A cut during the drain takes effect at its next wake-up.
        """
        st = self.stage
        if st is None:
            return
        st.deadline_ns = _clock()
        if self._dispatcher is not None and not self._dispatcher.done():
            self._dispatcher.cancel()

    def flush(self) -> None:
        """Hand over the records waiting in this core's batch now (a second Ctrl-C)."""
        self._send_records()

    # ---- monitoring ----------------------------------------------------------------------------------

    def _lag_sink(self) -> Metric | None:
        st = self.stage
        return None if st is None or st.agg is None else st.agg.loop_lag

    _last_sample = 0

    def _on_tick(self, now: int) -> None:
        st = self.stage
        if st is not None and st.agg is not None and now - self._last_sample >= 500_000_000:
            self._last_sample = now
            st.agg.sample_in_flight(now, st.requests_in_flight())
        if now - self._last_send >= SEND_INTERVAL_NS:
            self._last_send = now
            self._send_records()
            if st is not None:
                self.out.progress(self._progress(st))

    def _progress(self, st: CoreStage, medians: bool = True) -> dict[str, Any]:
        """Counts for the coordinator; the TTFT and E2E medians are computed only when ``medians`` (each tick),
        else those of the last tick are sent: reading a metric folds every success held, and an error storm under
        --max-errors sends progress on every error."""
        agg = st.agg
        if agg is None:
            ok, failed, cancelled = st.warmup_done
            return {"stage": st.index, "ok": ok, "failed": failed, "cancelled": cancelled, "in_flight": 0}
        tl = agg.timeline
        if medians:
            st.p50s = (agg.percentile_ms("ttft", 50), agg.percentile_ms("e2e_latency", 50))
        return {
            "stage": st.index,
            "ok": agg.succeeded,
            "failed": agg.failed,
            "cancelled": agg.cancelled,
            "sent": agg.sent,
            "in_flight": st.requests_in_flight(),
            "dispatched": st.dispatched,
            "last_second": tl[-2] if len(tl) >= 2 else None,
            "ttft_p50": st.p50s[0],
            "e2e_p50": st.p50s[1],
        }

    def _send_records(self) -> None:
        if self._out:
            lines, self._out = self._out, []
            self.out.records(lines)  # not joined here: a second's records can be MBs (the writer uses writev)

    # ---- a stage ------------------------------------------------------------------------------------

    async def run_stage(self, spec: dict[str, Any]) -> None:
        """Run one stage; a failure goes to the coordinator (which fails the run) rather than up."""
        try:
            await self.run_stage_raising(spec)
        except Exception:  # noqa: BLE001 - reported to the coordinator, which fails the run
            self.out.error(traceback.format_exc())

    async def run_stage_raising(self, spec: dict[str, Any]) -> None:
        cfg = self.cfg
        st = CoreStage(spec, self.offset_ns)
        if spec["shared_counter"] and self.counter is not None:
            src: SharedCounter | _Strided = self.counter
        else:
            src = _Strided(spec["rank"], spec["active"])
        cpu = CpuMeter()
        parallel = spec.get("parallel", st.cap)
        n_warm = cfg.prewarm_count(parallel, st.rate) if not st.warmup else 0
        if n_warm and self.client is not None:
            if st.t0_ns is None:  # the whole stage is ours: open every connection, then start
                await self.client.prewarm(n_warm)
            else:
                # Our share, and never past the stage's start time (the schedule is the coordinator's).
                share = max(1, round(n_warm * st.cap / max(1, cfg.concurrency_cap(parallel, st.rate))))
                left_s = (st.t0_ns - _clock()) / 1e9 - 0.05
                if left_s > 0.05:
                    await self.client.prewarm(min(share, n_warm), timeout_s=left_s)
        t0 = st.t0_ns
        if t0 is None:
            t0 = _clock()
        elif t0 > _clock():
            await sleep_until(t0)
        st.start(t0, None if st.warmup else Aggregator(t0, cfg.metric_profile, cfg.goodput))
        _freeze_heap()
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
        off = self.offset_ns
        done: dict[str, Any] = {
            "stage": st.index,
            "warmup": st.warmup,
            "t0_ns": t0 + off,
            "offset_ns": off,
            "dispatched": st.dispatched,
            "cap_waits": st.cap_waits,
            "reconnects": st.reconnects,
            "cpu_percent": cpu.percent(),
            "cpu_seconds": cpu.cpu_seconds(),
            "wait_percent": cpu.wait_percent(),
            "first_sent_ns": _shift(st.first_sent_ns, off),
            "last_sent_ns": _shift(st.last_sent_ns, off),
            "first_sched_ns": _shift(st.first_sched_ns, off),
            "last_sched_ns": _shift(st.last_sched_ns, off),
            "prompts_used": self._prompt_pos,
            "dataset": self._dataset.describe() if self._dataset is not None else {},
        }
        if self._sessions is not None:
            done["sessions"] = self._sessions.to_state()
            self._sessions = None
        self.stage = None
        self.out.done(done, st.agg)

    def _prompt_at(self, idx: int) -> Any:
        """Prompt number ``idx`` of the seeded dataset (indices claimed by one core only increase)."""
        skip = idx - self._prompt_pos
        if skip < 0:
            raise RuntimeError(f"prompt {idx} requested after {self._prompt_pos}")
        p = next(self._prompts) if skip == 0 else next(itertools.islice(self._prompts, skip, None))
        self._prompt_pos = idx + 1
        return p

    async def _dispatch(self, st: CoreStage, src: SharedCounter | _Strided, spec: dict[str, Any]) -> None:
        """The stage's one dispatch loop: claim item *i* (a request, or a session with --multi-turn), wait for
        its arrival time (open loop) and a slot, then start it as a task."""
        cfg = self.cfg
        launch: Launch = self._request
        if spec.get("sessions"):  # --multi-turn: number counts sessions (perf/sessions.py)
            from evalscope.perf.sessions import SessionStats, session_launcher

            self._sessions = SessionStats()
            launch = session_launcher(self, self._sessions)
        if st.rate is None and launch == self._request:
            await self._slots(st, src)
            return
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(st.cap)
        number = st.number
        deadline = st.deadline_ns
        arrivals: Iterator[int] | None = None
        if st.rate is not None:
            shape = spec.get("arrivals")
            if shape is None:
                offsets = arrival_offsets_ns(
                    st.rate, cfg.burstiness, cfg.seed + max(0, st.index), cfg.constant_rate
                )
            else:  # a ramp or a trace (perf/shapes.py)
                from evalscope.perf.shapes import shaped_offsets

                offsets = shaped_offsets(
                    shape,
                    burstiness=cfg.burstiness,
                    seed=cfg.seed + max(0, st.index),
                    dataset=self._dataset,
                    prompt_base=spec["prompt_base"],
                )
            active = spec["active"]
            arrivals = offsets if active == 1 else itertools.islice(offsets, spec["rank"], None, active)
        t0 = st.t0_ns
        assert t0 is not None
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
                if (
                    arrivals is not None
                    and deadline is not None
                    and st.agg is not None
                    and self._sessions is None
                ):
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
            st.dispatched += 1
            task = loop.create_task(launch(st, sem, i, due if arrivals is not None else None, _clock()))
            st.in_flight.add(task)

    async def _slots(self, st: CoreStage, src: SharedCounter | _Strided) -> None:
        """The closed loop: one long-lived task per slot, each claiming, sending and recording one request after
        another (no task, semaphore or dispatcher wake-up per request). Returns at the deadline or when every
        slot ran out of items; cancelled (a stop, a cut), it tells the slots to claim no more and lets
        :meth:`_drain` wait for or cancel what they have in flight."""
        loop = asyncio.get_running_loop()
        st.slotted = True
        slots = [loop.create_task(self._slot(st, src)) for _ in range(st.cap)]
        st.in_flight.update(slots)
        try:
            while True:
                deadline = st.deadline_ns
                timeout = None if deadline is None else max(0.0, (deadline - _clock()) / 1e9)
                done, _pending = await asyncio.wait(slots, timeout=timeout)
                for t in done:
                    exc = None if t.cancelled() else t.exception()
                    if exc is not None:
                        raise exc  # a bug in a slot fails the stage
                if len(done) == len(slots) or (st.deadline_ns is not None and _clock() >= st.deadline_ns):
                    break
        finally:
            st.slots_stop = True

    async def _slot(self, st: CoreStage, src: SharedCounter | _Strided) -> None:
        client = self.client
        assert client is not None
        number = st.number
        first = True
        try:
            while not st.slots_stop:
                deadline = st.deadline_ns
                if deadline is not None and _clock() >= deadline:
                    break
                i = src.claim(number)
                if i is None:
                    break
                if not first:
                    st.cap_waits += 1  # this request waited for its slot's previous one (the closed loop)
                first = False
                st.dispatched += 1
                slot_ns = _clock()
                req = self._build(st, i, None, slot_ns)
                st.busy += 1
                try:
                    rec = await client.send(req, on_cancel=partial(self._on_cancelled, st, slot_ns))
                finally:
                    st.busy -= 1
                # yield before the record work, as _one does (see yield_then)
                await yield_then(self._on_record, st, rec, slot_ns)
        except asyncio.CancelledError:
            pass  # the cancelled record (if the request had started) went through on_cancel
        finally:
            task = asyncio.current_task()
            if task is not None:
                st.in_flight.discard(task)

    def _request(
        self, st: CoreStage, sem: asyncio.Semaphore, i: int, due: int | None, slot_ns: int
    ) -> Coroutine[Any, Any, None]:
        """Item *i* of an ordinary stage: one request, due at ``due`` (open loop) or now (closed loop); built
        here, in the dispatch loop, and sent by the task that runs the returned coroutine."""
        return self._one(st, sem, self._build(st, i, due, slot_ns), slot_ns)

    def _build(self, st: CoreStage, i: int, due: int | None, slot_ns: int) -> Request:
        cfg = self.cfg
        scheduled = due if due is not None else slot_ns
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
        return req

    async def _one(self, st: CoreStage, sem: asyncio.Semaphore, req: Request, slot_ns: int) -> None:
        task = asyncio.current_task()
        assert self.client is not None
        try:
            rec = await self.client.send(req, on_cancel=lambda r: self._on_record(st, r, slot_ns))
            # Yield first with either transport: the reads that became ready while this burst of completions
            # runs get polled and stamped before the record work (peers b128 / b512: added E2E mean -25 %).
            await yield_then(self._on_record, st, rec, slot_ns)
        except asyncio.CancelledError:
            pass  # the cancelled record (if the request had started) went through on_cancel
        finally:
            sem.release()
            if task is not None:
                st.in_flight.discard(task)

    def _on_cancelled(self, st: CoreStage, slot_ns: int, rec: RequestRecord) -> None:
        self._on_record(st, rec, slot_ns)

    def _on_record(self, st: CoreStage, rec: RequestRecord, slot_ns: int) -> None:
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
            # Client overhead only: from "due and a slot is free" to "sent" (cap waits are queue time).
            agg.dispatch_lag.record(max(0, rec.sent_ns - max(rec.scheduled_ns, slot_ns)))
        if rec.status == "error" and self._thresholds:
            self.out.progress(self._progress(st, medians=False))  # --max-errors is checked now, not next tick

    async def _drain(self, st: CoreStage) -> None:
        """Wait for in-flight requests; cancel them at the deadline, on abort, or at the drain limit."""
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
                # Wake up when everything finished, the limit passed, or a stop (Ctrl-C, abort) changed it.
                waiter = None if self._stopping.is_set() else asyncio.ensure_future(self._stopping.wait())
                aws: set[asyncio.Future[Any]] = {all_done}
                if waiter is not None:
                    aws.add(waiter)
                await asyncio.wait(aws, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if waiter is not None:
                    waiter.cancel()
            if not all_done.done():
                all_done.cancel()  # cancels the wait, not the requests
        # let requests created in the last dispatch step start, so that cancelling them leaves a record
        await asyncio.sleep(0)
        rest = set(st.in_flight)
        st.cut_at_deadline = bool(rest) and past_deadline(st.deadline_ns, self._abort)
        for t in rest:
            t.cancel()
        if rest:
            await asyncio.gather(*rest, return_exceptions=True)
