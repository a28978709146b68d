"""The coordinator: owns the schedule and the stages, the run directory, signals and the results.

It drives any :class:`~evalscope.perf._pools.Pool` (one local core, worker processes, Ray actors) the same
way: for each stage (a list from the start: warm-up, then ``cfg.stages()``) it hands every active core its
spec, hears records / progress / results through the :class:`~evalscope.perf._pools.Sink` calls, appends the
records to ``records.jsonl``, checks the error thresholds, merges the cores' aggregators exactly (HDR
histograms add bucket by bucket) and writes the stage summary, with the fidelity verdict from the merged
loop lag and the busiest core's CPU. Displays get data only (:mod:`evalscope.perf.progress`).

Signals: the first Ctrl-C / SIGTERM stops dispatching, lets in-flight requests finish for up to
``--drain-timeout`` seconds, cancels the rest (their records say ``cancelled``), writes everything and ends
with status ``interrupted``; a second one flushes the records, marks the manifest and exits at once (130).

May import: ``engine``, ``perf._pools`` (the protocol), ``perf.aggregate``, ``perf.fidelity``,
``perf.servermetrics``, ``perf.storage``, ``perf.summary``, ``perf.progress``, ``perf.min_window``,
``perf.sendside``; ``report`` (the HTML hook) and ``perf.shapes`` lazily. Never ``perf.runner`` or
``perf.report``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from evalscope import __version__
from evalscope.engine.client import Client, GetFailed
from evalscope.engine.redact import redact_url
from evalscope.engine.session import base_url
from evalscope.errors import EndpointError, EvalscopeError
from evalscope.perf._core import make_client
from evalscope.perf._pools import Pool, split_evenly
from evalscope.perf._wire import boot_id
from evalscope.perf.aggregate import Aggregator
from evalscope.perf.fidelity import CpuMeter, MachineMeter, verdict
from evalscope.perf.progress import LiveStage, Reporter
from evalscope.perf.servermetrics import ServerMetricsScraper
from evalscope.perf.storage import HISTOGRAMS_FILE, RecordWriter, make_run_dir, safe_json, write_json_atomic
from evalscope.perf.summary import SCHEMA, stage_summary

_clock = time.perf_counter_ns
MIN_COMPLETED_FOR_RATE = 20
#: Remote cores start a stage this long after the coordinator decided to (so they all start at the same t0).
START_DELAY_NS = 50_000_000
#: Extra lead time before a stage's start when remote cores first open their connections (--prewarm).
PREWARM_ALLOWANCE_NS = 500_000_000
TICK_S = 0.5


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a run. The coordinator runs a list of these; a sweep or an SLA search is a longer list."""

    index: int  # -1: the warm-up
    parallel: int
    number: int | None
    rate: float | None  # None: closed loop
    warmup: bool = False
    duration: float | None = (
        None  # this stage's own time limit (--stage-list, an SLA probe); None: --duration
    )
    cap: int | None = None  # this stage's concurrency cap; None: cfg.concurrency_cap(parallel)
    arrivals: dict[str, Any] | None = None  # a ramp or a trace (perf/shapes.py); None: steady --rate
    sessions: bool = False  # --multi-turn (perf/sessions.py)


def plan_stages(cfg: Any, dataset: Any = None) -> list[Stage]:
    """The stages of ``cfg``: the warm-up (if any), then one per ``--parallel`` / ``--number`` value, or
    one per ``--stage-list`` entry; ramps and traces shape each stage's arrivals (perf/shapes.py)."""
    stages = cfg.stages()
    out = [Stage(-1, stages[0][0], cfg.warmup, None, warmup=True)] if cfg.warmup else []
    if cfg.stage_list is not None:
        from evalscope.perf.shapes import plan_stage_list

        return out + [Stage(i, **row) for i, row in enumerate(plan_stage_list(cfg))]
    if cfg.ramp_up_strategy is None and cfg.dataset != "trace" and not cfg.multi_turn:
        return out + [Stage(i, p, n, cfg.rate) for i, (p, n) in enumerate(stages)]
    from evalscope.perf.shapes import shaped_stage

    return out + [Stage(i, **shaped_stage(cfg, dataset, p, n)) for i, (p, n) in enumerate(stages)]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Coordinator:
    """One ``perf`` run (all stages) over a pool of cores. Use :func:`evalscope.perf.runner.run_perf`."""

    def __init__(
        self,
        cfg: Any,
        dataset: Any,
        tokenizer: Any,
        url: str,
        api_key: str | None,
        reporter: Reporter,
        pool: Pool,
        simulator: dict[str, Any] | None = None,
        how: str | None = None,
        stages: list[Stage] | None = None,
    ) -> None:
        self.cfg = cfg
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.url = url
        self.api_key = api_key
        self.reporter = reporter
        self.pool = pool
        self.simulator = simulator
        self.how = how  # how the number of workers was chosen (None: in-process by default)
        self.stages = stages if stages is not None else plan_stages(cfg, dataset)
        self.status = "running"
        self.stop_reason: str | None = None
        self.run_dir: Path | None = None
        self.writer: RecordWriter | None = None
        self.live: LiveStage | None = None
        self.stage_summaries: list[dict[str, Any]] = []
        # each stage's latency histograms, written to histograms.json: the report draws its CDFs from them
        self.stage_histograms: dict[str, dict[str, Any]] = {}
        self.started_wall = time.time()
        self.started_ns = _clock()
        self.model = cfg.model or ""
        self.served_models: list[str] = []
        self.final_summary: dict[str, Any] | None = None
        self.scraper: ServerMetricsScraper | None = None  # --server-metrics
        self.kill_on_exit: list[int] = []
        self._next_id = 0
        self._prompts_used = 0
        self._describe: tuple[int, dict[str, Any]] = (-1, {})
        self._interrupts = 0
        self._interrupt_ns: int | None = None
        self._stopping = asyncio.Event()
        self._manifest: dict[str, Any] = {}
        self._done: dict[int, tuple[dict[str, Any], Aggregator | None]] = {}
        self._progress: dict[int, dict[str, Any]] = {}
        self._stage_waiter: asyncio.Future[None] | None = None
        self._active = 0
        self._failure: BaseException | str | None = None
        self._warned: frozenset[str] = frozenset()
        #: a sweep / SLA search / repeats plan (perf/probe.py): adds its block to the summary
        self.planner: Any = None
        self.resume_dir: Path | None = None  # --resume: reuse this run directory
        self._client: Client | None = None  # the coordinator's own client (preflight, identify, GETs)

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def main(self) -> dict[str, Any]:
        cfg = self.cfg
        client = make_client(cfg, self.url, self.model, self.api_key)
        self._client = client
        async with client:
            if cfg.test_connection:
                from evalscope.engine.preflight import preflight

                pf = await preflight(client)
                self.served_models = pf.served_models
            elif not client.model:
                client.model = await first_served_model(client)
            simulator = await client.identify()  # request ids go to our simulator only
            self.model = client.model
            setup: dict[str, Any] = {
                "cfg": cfg,
                "url": self.url,
                "model": self.model,
                "api_key": self.api_key,
                "simulator": simulator,
                "coord_boot_id": boot_id(),
                "coord_now_ns": _clock(),
            }
            if self.pool.local:  # the one core shares our connections, dataset and tokenizer
                setup.update(client=client, dataset=self.dataset, tokenizer=self.tokenizer)
            try:
                await self.pool.start([{**setup, "worker": k} for k in range(self.pool.n)], self)
                self.kill_on_exit.extend(self.pool.local_pids)
                await self._run(cfg)
            finally:
                try:
                    await self.pool.close()
                finally:
                    self.pool.kill()
                    self._finalize()
        return self.final_summary if self.final_summary is not None else safe_json(self.summary())

    async def _run(self, cfg: Any) -> None:
        self._open_run_dir()
        self.start_scraper()
        self.reporter.header(self._header_info())
        if self.how is not None:
            self.reporter.message(f"workers  {self.pool.backend}: {self.how}")
        self._install_signals()
        ticker = asyncio.get_running_loop().create_task(self._ticker())
        try:
            for stage in self.stages:
                if self._stopping.is_set():
                    break
                if stage.index > 0 and cfg.sleep_interval > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), cfg.sleep_interval)
                    if self._stopping.is_set():
                        break
                await self._run_stage(stage)
            if self.status == "running":
                self.status = "completed"
        except BaseException:
            if self.status == "running" or (self._failure is not None and self.status == "interrupted"):
                self.status = "failed"
            raise
        finally:
            ticker.cancel()
            await self.stop_scraper()
            self._remove_signals()

    def _header_info(self) -> dict[str, Any]:
        cfg = self.cfg
        info = {
            "url": redact_url(self.url),
            "model": self.model,
            "api": cfg.api,
            "simulator": self.simulator,
            "dataset": cfg.dataset,
            "tokenizer": self.tokenizer.name,
            # A sweep / SLA search / repeats plan is a generator deciding as it goes: don't consume it here.
            "stages": (
                [(s.parallel, s.number) for s in self.stages if not s.warmup]
                if isinstance(self.stages, list)
                else cfg.stages()
            ),
            "rate": cfg.rate,
            "duration": cfg.duration,
            "run_dir": str(self.run_dir),
            "metric_profile": cfg.metric_profile,
        }
        if not self.pool.local:
            info["workers"] = {"backend": self.pool.backend, "count": self.pool.n, "how": self.how}
        return info

    def _open_run_dir(self) -> None:
        cfg = self.cfg
        self.run_dir = self.resume_dir or make_run_dir(
            Path(cfg.outputs_dir), cfg.name, timestamp=not cfg.no_timestamp
        )
        self.writer = RecordWriter(self.run_dir / "records.jsonl", cfg.save_responses)
        self._manifest = {
            "schema": "evalscope.perf.manifest/1",
            "run_id": self.run_dir.name,
            "command": "perf",
            "status": "running",
            "config": safe_json(cfg.public_dict()),
            "target": {
                "url": redact_url(self.url),
                "model": self.model,
                "api": cfg.api,
                "simulator": self.simulator,
            },
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
        """Start scraping ``--server-metrics`` on this loop."""
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
        if self.stage_histograms:
            write_json_atomic(
                self.run_dir / HISTOGRAMS_FILE,
                {
                    "schema": "evalscope.histograms/1",
                    "metric_profile": self.cfg.metric_profile,
                    "stages": self.stage_histograms,
                },
            )
            self._manifest.setdefault("files", {})["histograms"] = HISTOGRAMS_FILE
        self._write_manifest()
        if self.cfg.html:
            from evalscope.report import write_html_safely

            write_html_safely(self.run_dir)

    def _write_manifest(self) -> None:
        if self.run_dir is None:
            return
        from evalscope.perf.min_window import overall_trust

        m = self._manifest
        m["status"] = self.status
        m["finished_at"] = _iso(time.time())
        m["elapsed_s"] = (_clock() - self.started_ns) / 1e9
        m["stop_reason"] = self.stop_reason
        m["target"]["model"] = self.model
        m["trustworthy"] = overall_trust(self.stage_summaries)
        m["records_written"] = self.writer.written if self.writer is not None else 0
        write_json_atomic(self.run_dir / "manifest.json", safe_json(m))

    def summary(self) -> dict[str, Any]:
        from evalscope.perf.min_window import overall_trust

        cfg = self.cfg
        describe = (
            self._describe[1] if self._describe[0] >= 0 and not self.pool.local else self.dataset.describe()
        )
        s: dict[str, Any] = {
            "schema": SCHEMA,
            "run_id": self.run_dir.name if self.run_dir is not None else None,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "started_at": _iso(self.started_wall),
            "elapsed_s": (_clock() - self.started_ns) / 1e9,
            "target": {
                "url": redact_url(self.url),
                "model": self.model,
                "api": cfg.api,
                "simulator": self.simulator,
            },
            "dataset": {"name": cfg.dataset, **describe},
            "token_counting": self.tokenizer.name,
            "metric_profile": cfg.metric_profile,
            "stream": cfg.stream,
            "trustworthy": overall_trust(self.stage_summaries),
            "stages": self.stage_summaries,
        }
        if self.planner is not None:
            s.update(self.planner.summary_blocks())
        if not self.pool.local:
            s["workers"] = {
                "backend": self.pool.backend,
                "count": self.pool.n,
                "how": self.how,
                "pids": list(self.pool.pids),
                "hosts": sorted({str(h.get("host")) for h in self.pool.hellos}),
            }
        return s

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
            n = self.live.in_flight if self.live is not None else 0
            self.reporter.message(
                f"Interrupted: stopped dispatching; draining {n} in-flight requests "
                f"(up to {self.cfg.drain_timeout:g} s). Press Ctrl-C again to exit now."
            )
            return
        # Second signal: exit at once, but never lose what was measured.
        self.status = "interrupted"
        self.stop_reason = (self.stop_reason or "") + "; second signal: exited without draining"
        with contextlib.suppress(Exception):
            self.pool.flush()
            if self.writer is not None:
                self.writer.close()
            self._write_manifest()
        for pid in self.kill_on_exit:
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

    # ---- what the cores tell us (the Sink) ----------------------------------------------------------------

    def on_records(self, k: int, chunks: list[bytes], lines: int) -> None:
        if self.writer is not None:
            self.writer.add_lines(chunks, lines)

    def on_progress(self, k: int, p: dict[str, Any]) -> None:
        self._progress[k] = p
        if int(p["failed"]):
            self._check_errors()

    def on_done(self, k: int, d: dict[str, Any], agg: Aggregator | None) -> None:
        self._done[k] = (d, agg)
        if int(d["prompts_used"]) > self._describe[0]:
            self._describe = (int(d["prompts_used"]), d["dataset"])
        self._wake()

    def on_error(self, k: int, exc: BaseException | str) -> None:
        if self._failure is None:
            self._failure = f"perf worker {k} failed:\n{exc}" if isinstance(exc, str) else exc
            self.pool.stop(True, None)
        self._wake()

    def on_exit(self, k: int) -> None:
        if self.live is not None and k < self._active and k not in self._done:
            self.on_error(k, "exited during a stage")

    def _current(self) -> list[dict[str, Any]]:
        st = self.live
        return [] if st is None else [p for p in self._progress.values() if p.get("stage") == st.index]

    def _check_errors(self) -> None:
        st = self.live
        if st is None or st.warmup or self.status != "running":
            return
        cur = self._current()
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
            await asyncio.sleep(TICK_S)
            self._update_live()
            if self.writer is not None:
                self.writer.maybe_flush()
            self.reporter.tick(self.live)

    def _update_live(self) -> None:
        st = self.live
        if st is None or st.warmup:
            return
        cur = self._current()
        st.succeeded = sum(int(p["ok"]) for p in cur)
        st.failed = sum(int(p["failed"]) for p in cur)
        st.cancelled = sum(int(p["cancelled"]) for p in cur)
        st.sent = sum(int(p.get("sent", 0)) for p in cur)
        st.in_flight = sum(int(p["in_flight"]) for p in cur)
        row = [0, 0, 0, 0]
        for p in cur:
            if p.get("last_second"):
                row = [a + int(b) for a, b in zip(row, p["last_second"], strict=True)]
        st.last_second = row
        for attr, key in (("ttft_p50_ms", "ttft_p50"), ("e2e_p50_ms", "e2e_p50")):
            vals = [(float(p[key]), int(p["ok"])) for p in cur if p.get(key) is not None]
            n = sum(w for _, w in vals)
            setattr(st, attr, sum(v * w for v, w in vals) / n if n else None)

    # ---- a stage ------------------------------------------------------------------------------------------

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
        client = self._client
        if client is None:
            return
        got = await measure(self.url, self.writer.path, offset, index, n, client.get)
        apply_send_side(client_block, got)

    def _spec(self, stage: Stage) -> dict[str, Any]:
        cfg = self.cfg
        index, parallel, number, warmup = stage.index, stage.parallel, stage.number, stage.warmup
        t0: int | None = None  # a local core starts as soon as its connections are open
        if not self.pool.local:
            prewarm = not warmup and cfg.prewarm_count(parallel, stage.rate)
            t0 = _clock() + START_DELAY_NS + (PREWARM_ALLOWANCE_NS if prewarm else 0)
        spec: dict[str, Any] = {
            "index": index,
            "warmup": warmup,
            "rate": stage.rate,
            "number": number,
            "parallel": parallel,
            "t0_ns": t0,
            "duration_ns": _duration_ns(
                stage.duration if stage.duration is not None else cfg.duration, warmup
            ),
            "id_base": 0 if warmup else self._next_id,
            "prompt_base": self._prompts_used,
        }
        if stage.duration is not None:
            spec["duration_ns"] = int(stage.duration * 1e9)
        if stage.arrivals is not None:
            spec["arrivals"] = stage.arrivals
        if stage.sessions:
            spec["sessions"] = True
        return spec

    async def _run_stage(self, stage: Stage) -> None:
        cfg = self.cfg
        index, parallel, number, warmup = stage.index, stage.parallel, stage.number, stage.warmup
        pool = self.pool
        cap = (
            parallel
            if warmup
            else stage.cap
            if stage.cap is not None
            else cfg.concurrency_cap(parallel, stage.rate)
        )
        active = min(pool.n, cap)
        caps = split_evenly(cap, active)
        rec_offset = self._records_offset()
        live_n = None if stage.sessions else number  # a sessions stage counts sessions, the view requests
        self.live = LiveStage(index, parallel, live_n, stage.duration or cfg.duration, warmup=warmup)
        self._done = {}
        self._progress = {}
        self._active = active
        if not warmup:
            if self.scraper is not None:
                self.scraper.begin_stage(index)
            self.reporter.stage_start(self.live)
        cpu = CpuMeter()
        machine = MachineMeter()
        pool.reset_counter()
        spec = self._spec(stage)
        shared = pool.shared_counter and spec["rate"] is None
        for k in range(active):
            pool.start_stage(
                k, {**spec, "cap": caps[k], "rank": k, "active": active, "shared_counter": shared}
            )
        self._stage_waiter = asyncio.get_running_loop().create_future()
        self._wake()
        await self._stage_waiter
        self._stage_waiter = None
        if self._failure is not None:
            if isinstance(self._failure, BaseException):
                raise self._failure
            raise EvalscopeError(self._failure)
        done = [self._done[k] for k in range(active)]
        dispatched = sum(int(d["dispatched"]) for d, _ in done)
        self._prompts_used += dispatched
        if self.writer is not None:
            self.writer.flush()
        if warmup:
            self.live = None
            return
        self._next_id += dispatched
        t0 = int(done[0][0]["t0_ns"])
        aggs = [a for _, a in done if a is not None]
        if len(aggs) == 1:
            agg = aggs[0]
        else:
            agg = Aggregator(t0, cfg.metric_profile, cfg.goodput)
            for a in aggs:
                agg.merge(a)
        client_block = self._client_block([d for d, _ in done], agg, cpu, machine, spec["rate"])
        if pool.backend != "ray":  # Ray actors elsewhere stamp on an estimated clock
            await self._check_send_side(client_block, index, rec_offset, dispatched)
        summary = stage_summary(
            agg,
            stage=index,
            parallel=parallel,
            concurrency_cap=cap,
            rate=spec["rate"],
            number=number,
            client=client_block,
            dispatch_start_ns=t0,
            percentiles=tuple(cfg.percentiles),
        )
        if stage.arrivals is not None or stage.sessions:  # ramps, traces, sessions (perf/shapes.py)
            from evalscope.perf.shapes import add_shape_summary

            add_shape_summary(summary, stage.arrivals, [d for d, _ in done], tuple(cfg.percentiles))
        if self.scraper is not None:
            summary["server_metrics"] = self.scraper.end_stage()
        self.stage_summaries.append(summary)
        self.stage_histograms[str(index)] = {name: m.to_state() for name, m in agg.metrics.items()}
        self.live = None
        self.warn_quirks(summary)
        self.reporter.stage_end(summary)

    def _client_block(
        self,
        done: list[dict[str, Any]],
        agg: Aggregator,
        cpu: CpuMeter,
        machine: MachineMeter,
        rate: float | None,
    ) -> dict[str, Any]:
        """The fidelity verdict and client numbers of a stage, from every core's report."""
        dispatched = sum(int(d["dispatched"]) for d in done)

        def _ends(first: str, last: str) -> tuple[int | None, int | None]:
            lo = [int(d[first]) for d in done if d[first] is not None]
            hi = [int(d[last]) for d in done if d[last] is not None]
            return (min(lo) if lo else None), (max(hi) if hi else None)

        first_sent, last_sent = _ends("first_sent_ns", "last_sent_ns")
        first_sched, last_sched = _ends("first_sched_ns", "last_sched_ns")
        cap_waits = sum(int(d["cap_waits"]) for d in done)
        achieved = scheduled = None
        if rate is not None and dispatched > 1:
            if first_sent is not None and last_sent is not None and last_sent > first_sent:
                achieved = (dispatched - 1) * 1e9 / (last_sent - first_sent)
            if first_sched is not None and last_sched is not None and last_sched > first_sched:
                scheduled = (dispatched - 1) * 1e9 / (last_sched - first_sched)
        worker_cpu = [round(float(d["cpu_percent"]), 1) for d in done]
        waits = [float(d["wait_percent"]) for d in done if d.get("wait_percent") is not None]
        block = verdict(
            agg.loop_lag,
            agg.dispatch_lag,
            max(float(d["cpu_percent"]) for d in done),
            rate,
            scheduled,
            achieved,
            cap_waits > 0,
            wait_percent=max(waits) if waits else None,
            machine_busy_percent=machine.busy_percent(),
        )
        if not self.pool.local:
            block["cpu_percent"] = round(sum(worker_cpu), 1)  # summed over workers
            block["cpu_percent_max_worker"] = max(worker_cpu)
            block["worker_cpu_percent"] = worker_cpu
            block["coordinator_cpu_percent"] = round(cpu.percent(), 1)
        block["cpu_seconds"] = sum(float(d["cpu_seconds"]) for d in done)
        block["cap_waits"] = cap_waits
        block["reconnects"] = sum(int(d.get("reconnects", 0)) for d in done)
        block["workers"] = len(done)
        block["backend"] = self.pool.backend
        if not self.pool.local:
            block["worker_requests"] = [int(d["dispatched"]) for d in done]
        return block


def _duration_ns(duration: float | None, warmup: bool) -> int | None:
    return int(duration * 1e9) if duration is not None and not warmup else None


async def first_served_model(client: Client) -> str:
    root = base_url(client.url)
    try:
        status, _headers, body = await client.get(f"{root}/v1/models")
        data = orjson.loads(body) if status == 200 else {}
    except (GetFailed, orjson.JSONDecodeError):
        data = {}
    if not isinstance(data, dict):
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
