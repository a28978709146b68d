"""Adaptive stage plans: a sweep, an SLA search or repeats, run by the ordinary coordinator one stage at a time.

The coordinator runs ``for stage in self.stages``; a :class:`Plan` makes that an iterator which decides each
next stage from the summaries of the previous ones (the coordinator appends a stage's summary before it asks
for the next). The searches themselves are generators of values (:mod:`evalscope.perf.sla`,
:mod:`evalscope.perf.sweep`); this module turns their values into stages, and stages back into results.

Each finished stage is appended to ``probes.jsonl`` in the run directory (with its summary and, for SLA
probes, the summary without the probe's warm-up requests) before the next one starts. ``--resume RUN_DIR``
replays the same deterministic plan: a stage it already has is taken from ``probes.jsonl`` instead of being
run, so finished probes are never rerun; the first missing one (the interrupted stage) runs again.

An open-loop probe is watched while it runs: when the queue keeps growing (completions fall behind arrivals
while the in-flight count rises) or TTFT keeps rising with it, it is over-saturated and the stage is cut
(``stopped_early`` in its summary); such a probe fails any SLA.

May import: ``engine.records``, ``perf.aggregate``, ``perf.summary``, ``perf.sla``, ``perf.sweep``,
``perf.storage``, ``perf.progress``; ``perf._coordinator`` for :class:`Stage` only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import orjson

from evalscope.perf._coordinator import Stage
from evalscope.perf.progress import LiveStage, Reporter
from evalscope.perf.sla import (
    ProbeResult,
    constraint_search,
    judge,
    maximise,
    mean_ci,
    metric_value,
    needed_percentiles,
    parse_groups,
)
from evalscope.perf.storage import safe_json, write_json_atomic

PROBES_FILE = "probes.jsonl"
PLAN_FILE = "plan.json"
#: Headline metrics of ``--repeats`` (mean and CI) and of ``perf compare``.
HEADLINE = (
    "rps",
    "tps",
    "error_rate",
    "mean_ttft",
    "p50_ttft",
    "p99_ttft",
    "mean_tpot",
    "p99_tpot",
    "mean_itl",
    "mean_e2e_latency",
    "p99_e2e_latency",
)
#: Over-saturation watch: the window it compares, and how far completions may fall behind arrivals.
WATCH_WINDOW_S = 3.0
WATCH_BEHIND = 0.85

Req = tuple[int, float | None, int | None, float | None]  # parallel, rate, number, duration


def wanted(cfg: Any) -> bool:
    """Whether ``cfg`` needs a plan (else the coordinator runs its fixed list of stages)."""
    return bool(cfg.sweep or cfg.sla_auto_tune or cfg.repeats > 1)


class _Watch(Reporter):
    """Passes every report on to the real reporter, and lets the plan watch each tick of a probe."""

    def __init__(self, inner: Reporter, plan: Plan) -> None:
        self.inner = inner
        self.plan = plan

    def header(self, info: dict[str, Any]) -> None:
        self.inner.header(info)

    def stage_start(self, live: LiveStage) -> None:
        self.inner.stage_start(live)

    def tick(self, live: LiveStage | None) -> None:
        self.plan.on_tick(live)
        self.inner.tick(live)

    def stage_end(self, summary: dict[str, Any]) -> None:
        self.inner.stage_end(summary)

    def message(self, text: str) -> None:
        self.inner.message(text)

    def close(self) -> None:
        self.inner.close()


class Plan:
    """The stages of a sweep, SLA search or repeats, decided as the run goes."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.coord: Any = None
        self.blocks: dict[str, Any] = {}
        self._memo: list[dict[str, Any]] = []
        self._resumed = 0
        self._next_index = 0
        self._watching: dict[str, Any] | None = None
        self.groups = parse_groups(cfg.sla_params) if cfg.sla_params else []

    # ---- wiring ------------------------------------------------------------------------------------------

    def bind(self, coord: Any, resume_dir: Path | None = None) -> None:
        """Make ``coord`` run this plan (its stages, its summary block, the watch on its reporter)."""
        self.coord = coord
        coord.planner = self
        coord.stages = self.stages()
        coord.reporter = _Watch(coord.reporter, self)
        if resume_dir is not None:
            coord.resume_dir = resume_dir

    def summary_blocks(self) -> dict[str, Any]:
        out: dict[str, Any] = safe_json(self.blocks)
        return out

    # ---- the stage iterator ------------------------------------------------------------------------------

    def stages(self) -> Iterator[Stage]:
        coord, cfg = self.coord, self.cfg
        run_dir: Path = coord.run_dir
        self._load(run_dir)
        if cfg.warmup:
            yield Stage(-1, cfg.parallel[0], cfg.warmup, None, warmup=True)
        search = self._search()
        try:
            req = next(search)
            while True:
                done = yield from self._run(req)
                if done is None:
                    return  # interrupted or aborted: the search stops with what it has
                req = search.send(done)
        except StopIteration:
            return

    def _run(self, req: Req) -> Generator[Stage, None, dict[str, Any] | None]:
        """One stage: from probes.jsonl when a resumed run already has it, else run by the coordinator."""
        coord = self.coord
        if self._memo:
            m = self._memo[0]
            if _same(m["req"], req):
                self._memo.pop(0)
                self._resumed += 1
                coord.stage_summaries.append(m["summary"])
                self.blocks["resumed"] = {"stages_reused": self._resumed}
                return m
            self._memo.clear()  # the plan went another way: nothing more to reuse
        parallel, rate, number, duration = req
        index = self._next_index
        self._next_index += 1
        offset = _size(coord.writer)
        stage = Stage(index, parallel, number, rate, duration=duration)
        self._watching = {"rate": rate, "samples": [], "t0": time.monotonic(), "reason": None}
        yield stage
        watch, self._watching = self._watching, None
        last = coord.stage_summaries[-1] if coord.stage_summaries else None
        if coord.status != "running" or last is None or last.get("stage") != index:
            return None
        if watch is not None and watch["reason"]:
            last["stopped_early"] = watch["reason"]
        entry: dict[str, Any] = {"req": list(req), "stage": index, "summary": last}
        if self.cfg.sla_auto_tune:
            entry["measured"] = self._measured(index, offset, parallel, rate, number, last)
        with open(coord.run_dir / PROBES_FILE, "ab") as f:
            f.write(orjson.dumps(safe_json(entry), option=orjson.OPT_APPEND_NEWLINE))
        return entry

    # ---- resume ------------------------------------------------------------------------------------------

    def _load(self, run_dir: Path) -> None:
        path = run_dir / PROBES_FILE
        plan = run_dir / PLAN_FILE
        if not plan.exists():
            write_json_atomic(
                plan, {"fields_set": sorted(self.cfg.model_fields_set), "config": self.cfg.public_dict()}
            )
        if not path.exists():
            return
        for line in path.read_bytes().splitlines():
            try:
                self._memo.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                break  # a line cut by a crash: everything after it is rerun
        top = max([int(m["stage"]) for m in self._memo] + [_max_stage(run_dir / "records.jsonl")] + [-1])
        self._next_index = top + 1
        ids = _max_id(run_dir / "records.jsonl")
        self.coord._next_id = ids + 1
        self.coord._prompts_used = ids + 1

    # ---- the over-saturation watch -----------------------------------------------------------------------

    def on_tick(self, live: LiveStage | None) -> None:
        w = self._watching
        if w is None or live is None or live.warmup or w["reason"] or w["rate"] is None:
            return
        now = time.monotonic()
        s = w["samples"]
        s.append((now, live.sent, live.done, live.in_flight, live.ttft_p50_ms, live.e2e_p50_ms))
        reason = oversaturated(s, float(w["rate"]))
        if reason is not None:
            w["reason"] = reason
            self.coord.reporter.message(f"Probe over-saturated ({reason}): cutting it short")
            self.coord.pool.cut_stage()

    # ---- measured summaries (SLA probes: warm-up excluded) -----------------------------------------------

    def _measured(
        self,
        index: int,
        offset: int,
        parallel: int,
        rate: float | None,
        number: int | None,
        full: dict[str, Any],
    ) -> dict[str, Any]:
        from evalscope.engine.records import RequestRecord
        from evalscope.perf.aggregate import Aggregator
        from evalscope.perf.summary import stage_summary

        cfg = self.coord.cfg
        recs = []
        with open(self.coord.run_dir / "records.jsonl", "rb") as f:
            f.seek(offset)
            for line in f:
                try:
                    d = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if d.get("stage") == index:
                    recs.append(d)
        recs.sort(key=lambda d: d["scheduled_ns"])
        warm = self._warmup_count(parallel, rate)
        kept = recs[warm:] if len(recs) > warm else recs
        if not kept:
            return full
        agg = Aggregator(kept[0]["scheduled_ns"], cfg.metric_profile, cfg.goodput)
        for d in kept:
            agg.add(RequestRecord.from_dict(d))
        pct = tuple(sorted(set(cfg.percentiles) | set(needed_percentiles(self.groups))))
        out = stage_summary(
            agg,
            stage=index,
            parallel=parallel,
            concurrency_cap=full.get("concurrency_cap", parallel),
            rate=rate,
            number=number,
            client={},
            dispatch_start_ns=kept[0]["scheduled_ns"],
            percentiles=pct,
        )
        out.pop("timeline", None)
        out["warmup_excluded"] = len(recs) - len(kept)
        if full.get("stopped_early"):
            out["stopped_early"] = full["stopped_early"]
        return out

    def _warmup_count(self, parallel: int, rate: float | None) -> int:
        if self.cfg.sla_warmup is not None:
            return int(self.cfg.sla_warmup)
        return math.ceil(rate) if rate is not None else parallel

    # ---- the searches ------------------------------------------------------------------------------------

    def _search(self) -> Generator[Req, dict[str, Any], None]:
        cfg = self.cfg
        if cfg.sla_auto_tune:
            yield from self._sla()
        elif cfg.sweep:
            from evalscope.perf.sweep import sweep

            yield from sweep(cfg, self.blocks)
        else:
            yield from self._repeats()

    def _repeats(self) -> Generator[Req, dict[str, Any], None]:
        cfg = self.cfg
        out: list[dict[str, Any]] = []
        self.blocks["repeats"] = out
        for p, n in cfg.stages():
            runs = []
            for _ in range(cfg.repeats):
                runs.append((yield (p, cfg.rate, n, None)))
            sums = [r["summary"] for r in runs]
            out.append(
                {
                    "parallel": p,
                    "rate": cfg.rate,
                    "number": n,
                    "stages": [r["stage"] for r in runs],
                    "metrics": {m: mean_ci([metric_value(s, m) for s in sums]) for m in HEADLINE},
                }
            )

    def probe_request(self, value: float) -> Req:
        """The stage of one SLA probe at ``value``: enough requests for the percentiles, plus the warm-up."""
        cfg = self.cfg
        q = max(needed_percentiles(self.groups), default=50.0)
        least = cfg.sla_min_requests or max(20, math.ceil(2 / (1 - q / 100)))
        mult = cfg.sla_number_multiplier or 2.0
        if cfg.sla_variable == "parallel":
            p = int(value)
            n = max(least, round(p * mult)) + self._warmup_count(p, None)
            return (p, None, n, cfg.duration)
        rate = float(value)
        n = max(least, round(rate * mult)) + self._warmup_count(1, rate)
        limit = cfg.duration if cfg.duration is not None else 1.5 * n / rate + 10.0
        return (cfg.parallel[0], rate, n, limit)

    def _sla(self) -> Generator[Req, dict[str, Any], None]:
        cfg = self.cfg
        integer = cfg.sla_variable == "parallel"
        lower = cfg.sla_lower_bound or 1.0
        upper = cfg.sla_upper_bound or 65536.0
        only = self.groups[0][0] if len(self.groups) == 1 and len(self.groups[0]) == 1 else None
        start: float | None = None
        if not integer and cfg.sla_lower_bound is None:
            # where to start the doubling: the rate one stream gets (a short closed-loop stage), not 1 req/s
            sync = yield (1, None, 10, None)
            rps = metric_value(sync["summary"], "rps")
            start = max(lower, rps) if rps else None
        if only is not None and only.op in ("max", "min"):
            sign = 1.0 if only.op == "max" else -1.0
            search = maximise(lower, upper, cfg.sla_resolution, integer, only.metric, sign, start)
        else:
            search = constraint_search(lower, upper, cfg.sla_resolution, integer, start)
        probes: list[ProbeResult] = []
        block: dict[str, Any] = {
            "variable": cfg.sla_variable,
            "params": cfg.sla_params,
            "repeats": cfg.sla_repeats,
            "resolution": cfg.sla_resolution,
            "bounds": [lower, upper],
            "status": "running",
            "probes": [],
        }
        self.blocks["sla"] = block
        try:
            value = next(search)
            while True:
                res = ProbeResult(value)
                for _ in range(cfg.sla_repeats):
                    done = yield self.probe_request(value)
                    res.runs.append(done.get("measured") or done["summary"])
                    res.stages.append(int(done["stage"]))
                    res.saturated = res.saturated or bool(done["summary"].get("stopped_early"))
                judge(res, self.groups)
                probes.append(res)
                block["probes"].append(res.to_dict())
                value = search.send(res)
        except StopIteration as stop:
            answer: dict[str, Any] = stop.value or {}
            block.update(answer)
            block["status"] = "completed"
        block["probes"] = sorted(block["probes"], key=lambda p: p["value"])


def oversaturated(samples: list[tuple[float, int, int, int, Any, Any]], rate: float) -> str | None:
    """Why an open-loop probe at ``rate`` is hopeless, from its live samples (t, sent, done, in flight, TTFT
    p50, e2e p50), or None. Only judged once the system had time to settle (3 x the median latency)."""
    if len(samples) < 4:
        return None
    t_end, sent_end, done_end, fl_end, ttft_end, _ = samples[-1]
    t_start = samples[0][0]
    # settled after 3 x the latency seen first (before any queue built up: a growing queue would otherwise
    # keep postponing its own verdict)
    first_e2e = next((float(x[5]) for x in samples if x[5]), 0.0)
    settle = max(WATCH_WINDOW_S, 3 * first_e2e / 1e3)
    if t_end - t_start < settle + WATCH_WINDOW_S:
        return None
    past = [s for s in samples if s[0] <= t_end - WATCH_WINDOW_S]
    if not past:
        return None
    _t0, sent0, done0, fl0, ttft0, _ = past[-1]
    arrived = sent_end - sent0
    finished = done_end - done0
    growth = fl_end - fl0
    if arrived <= 0:
        return None
    if finished < WATCH_BEHIND * arrived and growth > max(5.0, 0.1 * rate * WATCH_WINDOW_S):
        return f"queue growing: {growth} more in flight in {WATCH_WINDOW_S:g} s, {finished}/{arrived} done"
    if ttft0 and ttft_end and float(ttft_end) > 1.5 * float(ttft0) and growth > 0:
        return f"TTFT rising: median {float(ttft0):.0f} -> {float(ttft_end):.0f} ms in {WATCH_WINDOW_S:g} s"
    return None


def _same(a: list[Any], b: Req) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if (x is None) != (y is None):
            return False
        if x is not None and y is not None and abs(float(x) - float(y)) > 1e-9 * max(1.0, abs(float(y))):
            return False
    return True


def _size(writer: Any) -> int:
    if writer is None:
        return 0
    writer.flush()
    try:
        return int(writer.path.stat().st_size)
    except OSError:
        return 0


def _scan(path: Path, key: bytes) -> int:
    """Largest integer value of ``key`` over the records of ``path`` (-1: none)."""
    import re

    if not path.exists():
        return -1
    rx = re.compile(rb'"' + key + rb'":(-?\d+)[,}]')
    best = -1
    with open(path, "rb") as f:
        for line in f:
            m = rx.search(line)
            if m is not None:
                best = max(best, int(m.group(1)))
    return best


def _max_stage(path: Path) -> int:
    return _scan(path, b"stage")


def _max_id(path: Path) -> int:
    return _scan(path, b"id")


def describe(summary: dict[str, Any]) -> list[str]:
    """Console lines for a plan's results (the sweep's knee, the SLA answer, the repeats' CIs)."""
    lines: list[str] = []
    sw = summary.get("sweep")
    if isinstance(sw, dict):
        lines.append("Sweep (offered rate -> achieved req/s, TTFT p50 / p99 ms, E2E mean ms):")
        for p in sw.get("points", []):
            offered = (
                "sync"
                if p["kind"] == "synchronous"
                else "max"
                if p["kind"] == "throughput"
                else f"{p['rate']:.2f}/s"
            )
            flag = "  over-saturated" if p.get("saturated") else ""
            lines.append(
                f"  {offered:>10}  {_f(p.get('rps'))} req/s  TTFT {_f(p.get('p50_ttft'))} / {_f(p.get('p99_ttft'))}"
                f"  E2E {_f(p.get('mean_e2e_latency'))}{flag}"
            )
        lines.append(
            f"  throughput plateau {_f(sw.get('plateau_rps'))} req/s; knee {_f(sw.get('knee_rate'))} req/s; "
            f"max sustainable rate {_f(sw.get('max_sustainable_rate'))} req/s"
        )
    sla = summary.get("sla")
    if isinstance(sla, dict):
        lines.append(f"SLA search over {sla.get('variable')} ({len(sla.get('probes', []))} probes):")
        for p in sla.get("probes", []):
            ms = p.get("metrics", {})
            keys = [*[k for k in ms if k not in ("rps", "tps", "error_rate")][:3], "rps"]
            vals = "  ".join(f"{k} {_f((ms.get(k) or {}).get('mean'))}" for k in keys)
            lines.append(f"  {p['value']:>10g}  {'met   ' if p['met'] else 'FAILED'}  {vals}")
        if sla.get("mode") == "constraint":
            lines.append(
                f"  largest value that met the SLA: {_f(sla.get('largest_met'))}; smallest that failed: "
                f"{_f(sla.get('smallest_failed'))} ({sla.get('reason')})"
            )
        elif sla.get("mode"):
            lines.append(f"  best {sla.get('metric')}: {_f(sla.get('best_value'))} at {_f(sla.get('best'))}")
    for r in summary.get("repeats") or []:
        lines.append(
            f"Repeats of parallel {r['parallel']} rate {r['rate']} (stages {r['stages']}): mean ± 95% CI"
        )
        for k, st in r["metrics"].items():
            if st.get("mean") is not None:
                ci = "" if st.get("ci95") is None else f" ± {st['ci95']:.4g}"
                lines.append(f"  {k:<18} {st['mean']:.4g}{ci}")
    return lines


def _f(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
    return str(v)
