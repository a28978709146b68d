"""The perf lifecycle: validate -> (start simulator) -> preflight -> warm-up -> stages -> drain -> finalize.

:func:`run_perf` is the Python API and what ``evalscope perf`` calls. Everything that can be checked without
the network (options, dataset files, tokenizer, URL) is checked before any request. Each stage dispatches
requests lazily (one ``Request`` at a time, in-flight tasks bounded by the concurrency cap), folds every
record into an :class:`Aggregator` and appends it to ``records.jsonl``; nothing is retried (E1).

Signals: the first Ctrl-C / SIGTERM stops dispatching, lets in-flight requests finish for up to
``--drain-timeout`` seconds, cancels the rest (their records say ``cancelled``), writes everything and ends
with status ``interrupted``; a second one flushes the records, marks the manifest and exits at once (130).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from evalscope import __version__
from evalscope.engine.client import Client, yield_then
from evalscope.engine.records import Request, RequestRecord
from evalscope.engine.redact import redact_url, register_secret, register_url_secrets
from evalscope.engine.session import Timeouts, base_url, normalize_url, run
from evalscope.errors import EndpointError, EvalscopeError
from evalscope.perf.aggregate import Aggregator, Metric
from evalscope.perf.config import PerfConfig, make_config
from evalscope.perf.coverage import count_queued, past_deadline, up_to
from evalscope.perf.datasets import DATASETS, PerfDataset, Prompt
from evalscope.perf.fidelity import CpuMeter, LoopLagMonitor, MachineMeter, verdict
from evalscope.perf.schedule import SLOT_DEADLINE, SLOT_WAITED, acquire_slot, arrival_offsets_ns, sleep_until
from evalscope.perf.servermetrics import ServerMetricsScraper
from evalscope.perf.storage import RecordWriter, make_run_dir, safe_json, write_json_atomic
from evalscope.perf.summary import SCHEMA, stage_summary
from evalscope.perf.tokenizer import Tokenizer, get_tokenizer

_clock = time.perf_counter_ns
MIN_COMPLETED_FOR_RATE = 20

#: Settings of the simulator started when no --url is given: a small, quick, realistic-looking server.
DEFAULT_SIM: dict[str, Any] = {"ttft_ms": 50.0, "itl_ms": 10.0, "output_tokens": 64}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Reporter:
    """Receives progress from the runner; the default does nothing (rendering is a leaf, see report.py)."""

    def header(self, info: dict[str, Any]) -> None: ...

    def stage_start(self, run: PerfRun, stage: int, parallel: int, number: int | None) -> None: ...

    def tick(self, run: PerfRun) -> None: ...

    def stage_end(self, run: PerfRun, summary: dict[str, Any]) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


class StageState:
    """Mutable state of the running stage, read by the live view."""

    def __init__(self, index: int, parallel: int, cap: int, number: int | None, agg: Aggregator) -> None:
        self.index = index
        self.parallel = parallel
        self.cap = cap
        self.number = number
        self.agg = agg
        self.in_flight: set[asyncio.Task[None]] = set()
        self.dispatched = 0
        self.t0_ns = agg.t0_ns
        self.deadline_ns: int | None = None
        self.first_sched_ns: int | None = None
        self.last_sched_ns: int | None = None
        self.first_sent_ns: int | None = None
        self.last_sent_ns: int | None = None
        self.cap_waits = 0
        self.reconnects = 0
        self.warmup = False
        self.cut_at_deadline = False  # requests cancelled now are incomplete at the deadline (coverage.py)


class PerfRun:
    """One ``perf`` run (all stages). Use :func:`run_perf` rather than this class directly."""

    def __init__(
        self,
        cfg: PerfConfig,
        dataset: PerfDataset,
        tokenizer: Tokenizer,
        url: str,
        api_key: str | None,
        reporter: Reporter,
        simulator: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.url = url
        self.api_key = api_key
        self.reporter = reporter
        self.simulator = simulator
        self.status = "running"
        self.stop_reason: str | None = None
        self.run_dir: Path | None = None
        self.writer: RecordWriter | None = None
        self.stage: StageState | None = None
        self.stage_summaries: list[dict[str, Any]] = []
        self.started_wall = time.time()
        self.started_ns = _clock()
        self.model = cfg.model or ""
        self._prompts: Iterator[Prompt] = dataset.prompts()
        self._next_id = 0
        self._interrupts = 0
        self._interrupt_ns: int | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._manifest: dict[str, Any] = {}
        self._kill_on_exit: list[int] = []
        self.served_models: list[str] = []
        self.final_summary: dict[str, Any] | None = None
        self.workers_note: str | None = None  # how --workers auto chose the in-process path
        self.scraper: ServerMetricsScraper | None = None  # --server-metrics

    # ---- lifecycle ---------------------------------------------------------------------------------------

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
            keep_text=cfg.save_responses,
            continuous_usage=cfg.continuous_usage,
        )
        async with client:
            if cfg.test_connection:
                from evalscope.engine.preflight import preflight

                pf = await preflight(client)
                self.served_models = pf.served_models
            elif not client.model:
                client.model = await _first_served_model(client)
            await client.identify()  # request ids go to our simulator only (usually known from preflight)
            self.model = client.model
            self._open_run_dir()
            self.start_scraper()
            self.reporter.header(self._header_info())
            if self.workers_note:
                self.reporter.message(f"workers  in-process: {self.workers_note}")
            self._install_signals()
            monitor = LoopLagMonitor(self._lag_sink, self._on_tick)
            monitor.start()
            try:
                if cfg.warmup:
                    await self._run_stage(client, -1, cfg.stages()[0][0], cfg.warmup, warmup=True)
                stages = cfg.stages()
                for i, (parallel, number) in enumerate(stages):
                    if self._stopping.is_set():
                        break
                    if i > 0 and cfg.sleep_interval > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stopping.wait(), cfg.sleep_interval)
                        if self._stopping.is_set():
                            break
                    await self._run_stage(client, i, parallel, number)
                if self.status == "running":
                    self.status = "completed"
            except BaseException:
                if self.status == "running":
                    self.status = "failed"
                raise
            finally:
                await monitor.stop()
                await self.stop_scraper()
                self._remove_signals()
                self._finalize()
        return self.final_summary if self.final_summary is not None else safe_json(self.summary())

    def _header_info(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "url": redact_url(self.url),
            "model": self.model,
            "api": cfg.api,
            "simulator": self.simulator,
            "dataset": cfg.dataset,
            "tokenizer": self.tokenizer.name,
            "stages": cfg.stages(),
            "rate": cfg.rate,
            "duration": cfg.duration,
            "run_dir": str(self.run_dir),
            "metric_profile": cfg.metric_profile,
        }

    def _open_run_dir(self) -> None:
        cfg = self.cfg
        self.run_dir = make_run_dir(Path(cfg.outputs_dir), cfg.name, timestamp=not cfg.no_timestamp)
        self.writer = RecordWriter(self.run_dir / "records.jsonl", cfg.save_responses)
        self._manifest = {
            "schema": "evalscope.perf.manifest/1",
            "run_id": self.run_dir.name,
            "command": "perf",
            "status": "running",
            "config": safe_json(cfg.public_dict()),
            "target": {"url": redact_url(self.url), "model": self.model, "api": cfg.api, "simulator": self.simulator},
            "versions": _versions(),
            "pid": os.getpid(),
            "started_at": _iso(self.started_wall),
            "finished_at": None,
            "elapsed_s": None,
            "stop_reason": None,
            "files": {"records": "records.jsonl", "summary": "summary.json"},
        }
        write_json_atomic(self.run_dir / "manifest.json", self._manifest)

    def start_scraper(self) -> None:
        """Start scraping ``--server-metrics`` on this loop (the coordinator's, with worker processes)."""
        if self.cfg.server_metrics and self.run_dir is not None:
            self.scraper = ServerMetricsScraper(
                self.cfg.server_metrics, self.run_dir / "server_metrics.jsonl", self.started_ns
            )
            self._manifest.setdefault("files", {})["server_metrics"] = "server_metrics.jsonl"
            self.scraper.start()

    async def stop_scraper(self) -> None:
        if self.scraper is not None:
            await self.scraper.stop()

    def _finalize(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.run_dir is None:
            return
        self.final_summary = safe_json(self.summary())
        write_json_atomic(self.run_dir / "summary.json", self.final_summary)
        self._write_manifest()
        if self.cfg.html:
            from evalscope.report import write_html_safely

            write_html_safely(self.run_dir)

    def _write_manifest(self) -> None:
        if self.run_dir is None:
            return
        m = self._manifest
        m["status"] = self.status
        m["finished_at"] = _iso(time.time())
        m["elapsed_s"] = (_clock() - self.started_ns) / 1e9
        m["stop_reason"] = self.stop_reason
        m["target"]["model"] = self.model
        from evalscope.perf.min_window import overall_trust

        m["trustworthy"] = overall_trust(self.stage_summaries)
        m["records_written"] = self.writer.written if self.writer is not None else 0
        write_json_atomic(self.run_dir / "manifest.json", safe_json(m))

    def summary(self) -> dict[str, Any]:
        from evalscope.perf.min_window import overall_trust

        cfg = self.cfg
        return {
            "schema": SCHEMA,
            "run_id": self.run_dir.name if self.run_dir is not None else None,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "started_at": _iso(self.started_wall),
            "elapsed_s": (_clock() - self.started_ns) / 1e9,
            "target": {"url": redact_url(self.url), "model": self.model, "api": cfg.api, "simulator": self.simulator},
            "dataset": {"name": cfg.dataset, **self.dataset.describe()},
            "token_counting": self.tokenizer.name,
            "metric_profile": cfg.metric_profile,
            "stream": cfg.stream,
            "trustworthy": overall_trust(self.stage_summaries),
            "stages": self.stage_summaries,
        }

    _warned: frozenset[str] = frozenset()

    def warn_quirks(self, summary: dict[str, Any]) -> None:
        """One warning line per kind of server quirk, once per run (the counts are in the summary)."""
        quirks = summary.get("server_quirks") or {}
        texts = {
            "usage_rejected": "the server's token usage was not plausible (strings, negative, huge or more "
            "than max_tokens) for {n} requests: counted tokens used instead (token_disagreement)",
            "not_streamed": "the server did not stream ({n} requests got a whole JSON body): TTFT, ITL and "
            "TPOT are not measured for them; E2E latency and tokens are",
            "sse_mislabelled": "the server labelled its stream as something other than text/event-stream "
            "({n} requests): accepted because it parsed as SSE",
        }
        for kind, text in texts.items():
            n = quirks.get(kind) or 0
            if n and kind not in self._warned:
                self._warned = self._warned | {kind}
                self.reporter.message("Warning: " + text.format(n=n))

    # ---- signals -----------------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        self._interrupts += 1
        if self._interrupts == 1:
            self.interrupt(f"signal {signal.Signals(sig).name}")
            n = len(self.stage.in_flight) if self.stage is not None else 0
            self.reporter.message(
                f"Interrupted: stopped dispatching; draining {n} in-flight requests "
                f"(up to {self.cfg.drain_timeout:g} s). Press Ctrl-C again to exit now."
            )
            return
        # Second signal: exit at once, but never lose what was measured.
        self.status = "interrupted"
        self.stop_reason = (self.stop_reason or "") + "; second signal: exited without draining"
        with contextlib.suppress(Exception):
            if self.writer is not None:
                self.writer.close()
            self._write_manifest()
        for pid in self._kill_on_exit:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        self.reporter.close()
        sys.stderr.write("Interrupted twice: records flushed, exiting.\n")
        sys.stderr.flush()
        os._exit(130)

    def interrupt(self, reason: str = "interrupted") -> None:
        """Stop dispatching and drain (the first Ctrl-C); usable from the Python API too."""
        if self.status == "running":
            self.status = "interrupted"
            self.stop_reason = reason
            self._interrupt_ns = _clock()
        self._stop_dispatch()

    def _abort(self, reason: str) -> None:
        if self.status == "running":
            self.status = "aborted"
            self.stop_reason = reason
            self.reporter.message(f"Aborting: {reason}")
        self._stop_dispatch()

    def _stop_dispatch(self) -> None:
        self._stopping.set()
        if self._dispatcher is not None and not self._dispatcher.done():
            self._dispatcher.cancel()

    def _records_offset(self) -> int:
        from evalscope.perf.sendside import records_offset

        if self.writer is None:
            return 0
        self.writer.flush()
        return records_offset(self.writer.path)

    async def _check_send_side(self, client_block: dict[str, Any], index: int, offset: int, n: int) -> None:
        """Against our simulator on this machine: its arrival stamps minus our sent stamps (fidelity)."""
        from evalscope.perf.fidelity import apply_send_side
        from evalscope.perf.sendside import measure

        if self.writer is None or n == 0:
            return
        self.writer.flush()
        apply_send_side(client_block, await measure(self.url, self.writer.path, offset, index, n))

    # ---- monitoring --------------------------------------------------------------------------------------

    def _lag_sink(self) -> Metric | None:
        st = self.stage
        return None if st is None or st.warmup else st.agg.loop_lag

    _last_second = 0

    def _on_tick(self, now: int) -> None:
        if now - self._last_second < 500_000_000:
            return
        self._last_second = now
        st = self.stage
        if st is not None and not st.warmup:
            st.agg.sample_in_flight(now, len(st.in_flight))
        if self.writer is not None:
            self.writer.maybe_flush()
        self.reporter.tick(self)

    # ---- one stage ---------------------------------------------------------------------------------------

    async def _run_stage(
        self, client: Client, index: int, parallel: int, number: int | None, warmup: bool = False
    ) -> None:
        cfg = self.cfg
        cap = parallel if warmup else cfg.concurrency_cap(parallel)
        if not warmup:
            await client.prewarm(cfg.prewarm_count(parallel))
        rec_offset = self._records_offset()
        t0 = _clock()
        agg = Aggregator(t0, cfg.metric_profile, cfg.goodput)
        st = StageState(index, parallel, cap, number, agg)
        st.warmup = warmup
        rate = None if warmup else cfg.rate
        if cfg.duration is not None and not warmup:
            st.deadline_ns = t0 + int(cfg.duration * 1e9)
        self.stage = st
        cpu = CpuMeter()
        machine = MachineMeter()
        if not warmup:
            if self.scraper is not None:
                self.scraper.begin_stage(index)
            self.reporter.stage_start(self, index, parallel, number)
        sem = asyncio.Semaphore(cap)
        self._dispatcher = asyncio.get_running_loop().create_task(
            self._dispatch(client, st, sem, rate), name=f"dispatch-{index}"
        )
        dispatch_start = _clock()
        try:
            await self._dispatcher
        except asyncio.CancelledError:
            if not self._stopping.is_set() and st.deadline_ns is None:
                raise  # we were cancelled from outside, not by a stop / deadline
        self._dispatcher = None
        await self._drain(st)
        if self.writer is not None:
            self.writer.flush()
        if warmup:
            self.stage = None
            return
        cpu_pct = cpu.percent()
        achieved = scheduled = None
        if rate is not None and st.dispatched > 1:
            if st.last_sent_ns and st.first_sent_ns and st.last_sent_ns > st.first_sent_ns:
                achieved = (st.dispatched - 1) * 1e9 / (st.last_sent_ns - st.first_sent_ns)
            if st.last_sched_ns and st.first_sched_ns is not None and st.last_sched_ns > st.first_sched_ns:
                scheduled = (st.dispatched - 1) * 1e9 / (st.last_sched_ns - st.first_sched_ns)
        client_block = verdict(
            agg.loop_lag,
            agg.dispatch_lag,
            cpu_pct,
            rate,
            scheduled,
            achieved,
            st.cap_waits > 0,
            wait_percent=cpu.wait_percent(),
            machine_busy_percent=machine.busy_percent(),
        )
        client_block["cpu_seconds"] = cpu.cpu_seconds()
        client_block["cap_waits"] = st.cap_waits
        client_block["reconnects"] = st.reconnects
        client_block["workers"] = 1
        client_block["backend"] = "in-process"
        await self._check_send_side(client_block, index, rec_offset, st.dispatched)
        summary = stage_summary(
            agg,
            stage=index,
            parallel=parallel,
            concurrency_cap=cap,
            rate=rate,
            number=number,
            client=client_block,
            dispatch_start_ns=dispatch_start,
            percentiles=tuple(cfg.percentiles),
        )
        if self.scraper is not None:
            summary["server_metrics"] = self.scraper.end_stage()
        self.stage_summaries.append(summary)
        self.warn_quirks(summary)
        self.reporter.stage_end(self, summary)
        self.stage = None

    async def _dispatch(
        self, client: Client, st: StageState, sem: asyncio.Semaphore, rate: float | None
    ) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        arrivals = (
            arrival_offsets_ns(rate, cfg.burstiness, cfg.seed + max(0, st.index), cfg.constant_rate)
            if rate is not None
            else None
        )
        number = st.number
        deadline = st.deadline_ns
        prompts = self._prompts
        t0 = _clock()
        while number is None or st.dispatched < number:
            if arrivals is not None:
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
                if arrivals is not None and deadline is not None:
                    count_queued(st.agg.coverage, due, arrivals, t0, deadline, up_to(number, st.dispatched))
                break
            if slot == SLOT_WAITED:
                st.cap_waits += 1
            slot_ns = _clock()
            scheduled = due if arrivals is not None else slot_ns
            p = next(prompts)
            if st.warmup:
                rid: int | str = f"warmup-{st.dispatched}"
            else:
                rid = self._next_id
                self._next_id += 1
            req = Request(
                request_id=rid,
                prompt=p.prompt,
                messages=p.messages,
                max_tokens=p.max_tokens,
                min_tokens=cfg.min_tokens,
                params=self._params(),
                prompt_tokens=p.prompt_tokens,
                scheduled_ns=scheduled,
            )
            if st.first_sched_ns is None:
                st.first_sched_ns = scheduled
            st.last_sched_ns = scheduled
            st.dispatched += 1
            task = loop.create_task(self._one(client, st, sem, req, slot_ns))
            st.in_flight.add(task)

    _params_cache: dict[str, Any] | None = None

    def _params(self) -> dict[str, Any] | None:
        if self._params_cache is None:
            cfg = self.cfg
            params: dict[str, Any] = {}
            if cfg.temperature is not None:
                params["temperature"] = cfg.temperature
            if cfg.top_p is not None:
                params["top_p"] = cfg.top_p
            params.update(cfg.extra_args)
            self._params_cache = params
        return self._params_cache or None

    async def _one(
        self, client: Client, st: StageState, sem: asyncio.Semaphore, req: Request, slot_ns: int
    ) -> None:
        task = asyncio.current_task()
        try:
            rec = await client.send(req, on_cancel=lambda r: self._on_record(st, r, slot_ns))
            await yield_then(self._on_record, st, rec, slot_ns)
        except asyncio.CancelledError:
            pass  # the cancelled record (if the request had started) went through on_cancel
        finally:
            sem.release()
            if task is not None:
                st.in_flight.discard(task)

    def _on_record(self, st: StageState, rec: RequestRecord, slot_ns: int) -> None:
        if st.first_sent_ns is None or rec.sent_ns < st.first_sent_ns:
            st.first_sent_ns = rec.sent_ns
        if st.last_sent_ns is None or rec.sent_ns > st.last_sent_ns:
            st.last_sent_ns = rec.sent_ns
        if self.writer is not None:
            d = rec.to_dict()
            d["stage"] = st.index
            if st.warmup:
                d["warmup"] = True
            self.writer.add(d)
        if st.warmup:
            return
        if rec.reconnects:
            st.reconnects += rec.reconnects
        agg = st.agg
        agg.add(rec)
        if st.cut_at_deadline and rec.status == "cancelled" and st.deadline_ns is not None:
            agg.coverage.add_in_flight(rec.scheduled_ns, st.deadline_ns)
        if rec.text is not None and rec.status == "ok" and rec.token_source == "usage":
            agg.add_token_check(
                (rec.completion_tokens or 0) - (rec.reasoning_tokens or 0), self.tokenizer.count(rec.text)
            )
        if self.cfg.rate is not None and rec.status != "cancelled":
            # Client overhead only: from "due and a slot is free" to "sent" (cap waits are queue time).
            agg.dispatch_lag.record(max(0, rec.sent_ns - max(rec.scheduled_ns, slot_ns)))
        if rec.status == "error" and self.status == "running":
            cfg = self.cfg
            if cfg.max_errors is not None and agg.failed >= cfg.max_errors:
                self._abort(f"{agg.failed} failed requests reached --max-errors {cfg.max_errors}")
            elif cfg.max_error_rate is not None:
                done = agg.succeeded + agg.failed
                if done >= MIN_COMPLETED_FOR_RATE and agg.failed / done > cfg.max_error_rate:
                    self._abort(
                        f"error rate {agg.failed / done:.1%} exceeded --max-error-rate {cfg.max_error_rate:g}"
                    )

    async def _drain(self, st: StageState) -> None:
        """Wait for in-flight requests; cancel them at the deadline, on abort, or after the drain timeout."""
        pending = set(st.in_flight)
        if pending:
            all_done = asyncio.ensure_future(asyncio.wait(pending))
            while not all_done.done():
                now = _clock()
                limit: int | None = None
                if self.status == "aborted":
                    limit = now
                elif self.status == "interrupted" and self._interrupt_ns is not None:
                    limit = self._interrupt_ns + int(self.cfg.drain_timeout * 1e9)
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
        st.cut_at_deadline = bool(rest) and past_deadline(st.deadline_ns, self.status == "aborted")
        for t in rest:
            t.cancel()
        if rest:
            await asyncio.gather(*rest, return_exceptions=True)


async def _first_served_model(client: Client) -> str:
    root = base_url(client.url)
    headers = {k: v for k, v in client.headers.items() if k.lower() != "content-type"}
    try:
        async with client.session.get(
            f"{root}/v1/models", headers=headers, timeout=aiohttp.ClientTimeout(total=15)
        ) as resp:
            data = orjson.loads(await resp.read()) if resp.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        data = {}
    models = [str(m["id"]) for m in data.get("data", []) if isinstance(m, dict) and "id" in m]
    if not models:
        raise EndpointError("no --model given and the server does not list its models", "pass --model NAME")
    return models[0]


def _versions() -> dict[str, str]:
    import platform

    out = {"evalscope": __version__, "python": platform.python_version()}
    for mod in ("aiohttp", "hdrh", "pydantic", "uvloop"):
        try:
            from importlib.metadata import version

            out[mod] = version("hdrhistogram" if mod == "hdrh" else mod)
        except Exception:  # noqa: BLE001 - a missing optional package is just not listed
            continue
    return out


def _start_simulator() -> tuple[AbstractContextManager[Any], str, dict[str, Any]]:
    try:
        from evalscope.sim import SimConfig, SimProcess
    except ImportError:
        raise EndpointError(
            "no --url given and the built-in simulator is not available", "pass --url of a server"
        ) from None
    proc = SimProcess(SimConfig(**DEFAULT_SIM))
    p = proc.__enter__()
    info = {"started": True, "url": p.url, "pid": p.pid, "config": DEFAULT_SIM}
    return proc, str(p.url), info


def prepare(cfg: PerfConfig) -> tuple[Tokenizer, PerfDataset, str | None, str | None]:
    """Everything checked before any network I/O: tokenizer, dataset, URL, API key."""
    tokenizer = get_tokenizer(cfg.tokenizer_path)
    dataset = DATASETS.get(cfg.dataset)(cfg, tokenizer)
    register_url_secrets(cfg.url)
    url = None
    if cfg.url is not None:
        from evalscope.engine.protocols.base import PROTOCOLS

        url = normalize_url(cfg.url, PROTOCOLS.get(cfg.api).default_path)
    api_key = cfg.resolve_api_key()
    if api_key:
        register_secret(api_key)
    from evalscope.engine.redact import is_secret_key

    for k, v in cfg.headers.items():
        if is_secret_key(k):
            register_secret(v)
            register_secret(v.split(" ", 1)[-1])
    return tokenizer, dataset, url, api_key


def _make_run(
    cfg: PerfConfig,
    dataset: PerfDataset,
    tokenizer: Tokenizer,
    url: str,
    api_key: str | None,
    reporter: Reporter,
    sim_info: dict[str, Any] | None,
) -> PerfRun:
    """In-process (one worker), or a coordinator of worker processes / Ray actors (``--workers``, ``--ray``)."""
    if cfg.workers == 1 and cfg.ray is None:
        return PerfRun(cfg, dataset, tokenizer, url, api_key, reporter, sim_info)
    from evalscope.perf.workers import WorkerRun, make_pool, resolve_workers

    n, how = resolve_workers(cfg, local_simulator=sim_info is not None)
    if n == 1 and cfg.ray is None:
        run = PerfRun(cfg, dataset, tokenizer, url, api_key, reporter, sim_info)
        run.workers_note = how
        return run
    return WorkerRun(cfg, dataset, tokenizer, url, api_key, reporter, sim_info, make_pool(cfg, n), how)


def run_perf(
    config: PerfConfig | Mapping[str, Any] | None = None,
    *,
    reporter: Reporter | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Run a perf benchmark and return the summary (the same dict as ``summary.json``).

    Args:
        config: a :class:`PerfConfig`, or a mapping of its fields (option names with underscores).
        reporter: receives progress for display; default: silent.
        **overrides: field values applied on top of ``config``.

    Returns:
        The summary; ``summary["status"]`` is ``completed``, ``interrupted``, ``aborted`` (error threshold)
        and ``summary["run_dir"]`` is the run directory.

    Raises:
        ConfigError: invalid options or dataset (before any network I/O).
        EndpointError: the endpoint failed the preflight checks.
    """
    cfg = make_config(config, **overrides)
    tokenizer, dataset, url, api_key = prepare(cfg)
    reporter = reporter or Reporter()
    sim_cm: AbstractContextManager[Any] | None = None
    sim_info: dict[str, Any] | None = None
    try:
        if url is None:
            sim_cm, sim_url, sim_info = _start_simulator()
            from evalscope.engine.protocols.base import PROTOCOLS

            url = normalize_url(sim_url, PROTOCOLS.get(cfg.api).default_path)
        pr = _make_run(cfg, dataset, tokenizer, url, api_key, reporter, sim_info)
        if sim_info is not None:
            pr._kill_on_exit.append(int(sim_info["pid"]))
        try:
            return run(pr.main())
        finally:
            reporter.close()
    finally:
        if sim_cm is not None:
            sim_cm.__exit__(None, None, None)


__all__ = ["EvalscopeError", "PerfConfig", "PerfRun", "Reporter", "run_perf"]
