"""The report model: everything a report shows, computed from a run directory's files only.

Reports never look at live run objects: they read ``manifest.json``, ``summary.json`` and ``records.jsonl``
(perf) or the journals and ``reports/<model>/<benchmark>.json`` (eval). So the same code regenerates the report
of an old run, of a run that crashed before writing its summary, and of a run still in progress (the app tails
its files). The model is plain JSON; every string in it has been through :func:`evalscope.engine.redact.redact`.

Aggregation is streaming and bounded: latency distributions go into the perf aggregator's HDR histograms,
the timeline into per-second bins (merged down to at most :data:`MAX_BINS`), and the per-request view into a
fixed-size reservoir sample. A million-record run costs a few megabytes, not its file size.
"""

from __future__ import annotations

import math
import os
import random
from array import array
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson

from evalscope.engine.redact import redact
from evalscope.perf.storage import HISTOGRAMS_FILE

#: Timeline bins shown at most (longer runs get wider bins).
MAX_BINS = 1500
#: Requests kept in the perf report's sample (scatter and table).
SAMPLE_SIZE = 2000
#: Metrics drawn as CDFs.
CDF_METRICS: tuple[str, ...] = ("ttft", "tpot", "itl", "e2e_latency")
#: Percentile grid of a CDF (denser in the tail, where latency problems live).
_CDF_GRID: tuple[float, ...] = (
    0.0,
    *(float(p) for p in range(1, 100)),
    99.25,
    99.5,
    99.75,
    99.9,
    99.95,
    99.99,
    100.0,
)
STATUS_CODES = {"ok": 0, "error": 1, "cancelled": 2}

#: Kind of run -> model builder. An ``arena`` builder registers here once the arena exists.
BUILDERS: dict[str, Callable[[Path], dict[str, Any]]] = {}


class RunDirError(ValueError):
    """The directory is not a run directory evalscope can report on."""


def _load_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def run_kind(run_dir: Path) -> str:
    """``perf``, ``eval`` (or another registered kind) from the files a run directory holds."""
    manifest = _load_json(run_dir / "manifest.json")
    if isinstance(manifest, dict):
        cmd = manifest.get("command")
        if isinstance(cmd, str) and cmd in BUILDERS:
            return cmd
        if cmd == "perf" or str(manifest.get("schema", "")).startswith("evalscope.perf"):
            return "perf"
        if "fingerprints" in manifest or (run_dir / "journal").is_dir():
            return "eval"
    if (run_dir / "records.jsonl").is_file() or (run_dir / "summary.json").is_file():
        return "perf"
    if (run_dir / "journal").is_dir() or (run_dir / "reports").is_dir():
        return "eval"
    raise RunDirError(
        f"{str(run_dir)!r} is not an evalscope run directory (no manifest.json, records.jsonl or journal/)"
    )


def build_model(run_dir: Path) -> dict[str, Any]:
    """The redacted report model of one run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{str(run_dir)!r} is not a directory")
    kind = run_kind(run_dir)
    if kind in BUILDERS:
        return BUILDERS[kind](run_dir)
    if kind == "perf":
        return perf_model(run_dir)
    return eval_model(run_dir)


# ---- perf --------------------------------------------------------------------------------------------------


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


def iter_lines(path: Path, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of every complete line from ``start`` (a torn last line is left for later)."""
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        buf = b""
        while True:
            want = 1 << 20 if end is None else min(1 << 20, end - pos - len(buf))
            chunk = f.read(want) if want > 0 else b""
            if not chunk:
                return
            buf += chunk
            lines = buf.split(b"\n")
            buf = lines.pop()
            for line in lines:
                yield pos, line
                pos += len(line) + 1


class PerfAccumulator:
    """Folds perf records (JSON lines) into everything the perf report draws; feed it once, read it often.

    With ``keep_index`` it also remembers each record's byte offset, status and stage (13 bytes a record) so
    the app can page through ``records.jsonl`` with filters without holding any record.
    """

    def __init__(
        self, profile: str = "default", keep_index: bool = False, seed: int = 0, light: bool = False
    ) -> None:
        from evalscope.perf.aggregate import Aggregator

        self._agg_cls = Aggregator
        self.profile = profile
        self.aggs: dict[int, Any] = {}
        # light: only the four CDF metrics, batched into the same HDR Metric objects (no stage summaries);
        # used when summary.json already holds the tables. Default metric profile only.
        self.light = light and profile == "default"
        self._buf: dict[int, dict[str, list[float]]] = {}
        self._light_metrics: dict[int, dict[str, Any]] = {}
        self._given_metrics: dict[int, dict[str, Any]] = {}  # from the run's histograms.json (use_histograms)
        self.records = 0
        self.bad_lines = 0
        self.pos = 0  # bytes of records.jsonl consumed
        self.keep_index = keep_index
        self.offsets = array("Q")
        self.statuses = array("b")
        self.stages = array("h")
        self.stage_first_sent: dict[int, int] = {}
        # per absolute second: sent, completed, failed, output tokens, ttft sum (ns), ttft count, ends
        self.bins: dict[int, list[float]] = {}
        self.err_bins: dict[str, dict[int, int]] = {}
        self.sample: list[dict[str, Any]] = []
        self._rng = random.Random(seed)
        self._seen_for_sample = 0
        # reservoir sampling with skips (Li's algorithm L): a random number per kept record, not per record
        self._sample_w = 1.0
        self._sample_next = 0

    def feed_file(self, path: Path, max_records: int | None = None) -> bool:
        """Read new complete lines of ``path``; True when the end of the file was reached."""
        if not path.is_file():
            return True
        for n, (off, line) in enumerate(iter_lines(path, self.pos), 1):
            self.feed(line, off)
            self.pos = off + len(line) + 1
            if max_records is not None and n >= max_records:
                return self.pos >= path.stat().st_size
        return True

    def feed(self, line: bytes, offset: int = 0) -> None:
        if not line.strip():
            return
        try:
            d = orjson.loads(line)
            self.add(d, offset)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.bad_lines += 1

    def add(self, d: dict[str, Any], offset: int = 0) -> None:
        if self.light:
            self._add_light(d, offset)
            return
        from evalscope.engine.records import RequestRecord

        rec = RequestRecord.from_dict(d)
        stage = int(d.get("stage", 0) or 0)
        status = rec.status
        self.records += 1
        if self.keep_index:
            self.offsets.append(offset)
            self.statuses.append(STATUS_CODES.get(status, 1))
            self.stages.append(stage)
        if stage < 0 or d.get("warmup"):
            return  # warm-up requests are not measured
        agg = self.aggs.get(stage)
        if agg is None:
            agg = self.aggs[stage] = self._agg_cls(rec.sent_ns, self.profile)
        agg.add(rec)
        first = self.stage_first_sent.get(stage)
        if first is None or rec.sent_ns < first:
            self.stage_first_sent[stage] = rec.sent_ns
        self._bin(rec, status)
        self._sample(rec, d, stage)

    def _add_light(self, d: dict[str, Any], offset: int) -> None:
        """The default-profile definitions of METRICS.md on the record dict, values buffered per stage."""
        self.records += 1
        stage = int(d.get("stage", 0) or 0)
        status = d["status"]
        if self.keep_index:
            self.offsets.append(offset)
            self.statuses.append(STATUS_CODES.get(status, 1))
            self.stages.append(stage)
        if stage < 0 or d.get("warmup"):
            return
        sent = d["sent_ns"]
        first = self.stage_first_sent.get(stage)
        if first is None or sent < first:
            self.stage_first_sent[stage] = sent
        if status == "ok":
            self._bin_ok(sent, d.get("end_ns"), d.get("completion_tokens"), d.get("first_token_ns"))
        else:
            self._bin(_LightRec(d), status)
        self._sample(None, d, stage)
        if status != "ok" or stage in self._given_metrics:
            return
        buf = self._buf.get(stage)
        if buf is None:
            buf = self._buf[stage] = {"ttft": [], "tpot": [], "e2e_latency": [], "itl": [], "itl_w": []}
        ft = d.get("first_token_ns")
        if ft is not None:
            buf["ttft"].append(ft - sent)
        n = d.get("completion_tokens")
        lt = d.get("last_token_ns")
        if n is not None and n > 1 and ft is not None and lt is not None:
            buf["tpot"].append((lt - ft) / (n - 1))
        end = d.get("end_ns")
        if end is not None:
            buf["e2e_latency"].append(end - sent)
        offs = d.get("event_offsets_ns") or ()
        ne = len(offs)
        if ne >= 2:
            if len(d.get("event_tokens") or ()) == ne:
                from evalscope.engine.records import RequestRecord
                from evalscope.perf.metrics import itl_spread

                vals, wts = buf["itl"], buf["itl_w"]

                def emit(v: float, k: int) -> None:
                    vals.append(v)
                    wts.append(k)

                itl_spread(RequestRecord.from_dict(d), emit)
            elif n is not None and n > ne:
                per = n / ne
                k = max(1, round(per))
                gaps = [(b - a) / per for a, b in pairwise(offs)]
                buf["itl"].extend(gaps)
                buf["itl_w"].extend([k] * len(gaps))
            else:
                gaps = [b - a for a, b in pairwise(offs)]
                buf["itl"].extend(gaps)
                buf["itl_w"].extend([1] * len(gaps))
        if len(buf["itl"]) > 32_768 or len(buf["ttft"]) > 32_768:
            self._flush_light(stage)

    def use_histograms(self, doc: Any) -> bool:
        """Take the CDF metrics' distributions from a run's ``histograms.json`` (the run's own aggregation of
        the same records, default profile) instead of recomputing them record by record; False (and nothing
        taken) when the document is not a usable one."""
        from evalscope.perf.histogram import Metric

        if not self.light or not isinstance(doc, dict) or doc.get("metric_profile") != "default":
            return False
        stages = doc.get("stages")
        if not isinstance(stages, dict) or not stages:
            return False
        given: dict[int, dict[str, Any]] = {}
        try:
            for key, mets in stages.items():
                given[int(key)] = {name: Metric.from_state(mets[name]) for name in CDF_METRICS}
        except Exception:  # noqa: BLE001 - hand-edited, truncated or corrupt (hdrh raises its own types)
            return False
        self._given_metrics = given
        return True

    def _flush_light(self, stage: int) -> None:
        import numpy as np

        from evalscope.perf.histogram import Metric

        buf = self._buf.get(stage)
        if not buf:
            return
        ms = self._light_metrics.setdefault(stage, {k: Metric() for k in CDF_METRICS})
        for name in CDF_METRICS:
            vals = buf[name]
            if vals:
                w = np.asarray(buf["itl_w"], dtype=np.float64) if name == "itl" else None
                ms[name].record_many(np.asarray(vals, dtype=np.float64), w)
                vals.clear()
        buf["itl_w"].clear()

    def _row(self, sec: int) -> list[float]:
        row = self.bins.get(sec)
        if row is None:
            row = self.bins[sec] = [0, 0, 0, 0, 0.0, 0, 0]
        return row

    def _bin(self, rec: Any, status: str) -> None:
        if status == "ok":
            self._bin_ok(rec.sent_ns, rec.end_ns, rec.completion_tokens, rec.first_token_ns)
            return
        self._row(rec.sent_ns // 1_000_000_000)[0] += 1
        end = rec.end_ns if rec.end_ns is not None else rec.sent_ns
        row = self._row(end // 1_000_000_000)
        row[6] += 1
        if status == "error":
            row[2] += 1
            err = rec.error
            hs = (err.http_status if err is not None else None) or rec.http_status
            kind = ("unknown" if err is None else err.kind) + (f" {hs}" if hs else "")
            kb = self.err_bins.setdefault(kind, {})
            sec = end // 1_000_000_000
            kb[sec] = kb.get(sec, 0) + 1

    def _bin_ok(self, sent: int, end: int | None, tokens: int | None, first_token: int | None) -> None:
        """A success into the per-second bins: sent, ended (completed, output tokens), first token (TTFT sum);
        one row lookup when the three fall in the same second, the common case."""
        sec = sent // 1_000_000_000
        row = self._row(sec)
        row[0] += 1
        if end is not None and end // 1_000_000_000 != sec:
            sec = end // 1_000_000_000
            row = self._row(sec)
        row[6] += 1
        row[1] += 1
        row[3] += tokens or 0
        if first_token is not None:
            trow = row if first_token // 1_000_000_000 == sec else self._row(first_token // 1_000_000_000)
            trow[4] += first_token - sent
            trow[5] += 1

    def _sample(self, rec: Any, d: dict[str, Any], stage: int) -> None:
        """A uniform sample of SAMPLE_SIZE records: the first ones, then replacements at random skips."""
        k = self._seen_for_sample = self._seen_for_sample + 1
        sample = self.sample
        if len(sample) < SAMPLE_SIZE:
            sample.append(light_record(d, stage))
            if len(sample) == SAMPLE_SIZE:
                self._next_skip(k)
            return
        if k < self._sample_next:
            return
        sample[self._rng.randrange(SAMPLE_SIZE)] = light_record(d, stage)
        self._next_skip(k)

    def _next_skip(self, k: int) -> None:
        """The next record (1-based count) to take into the full sample, from ``k`` on."""
        rnd = self._rng.random
        self._sample_w *= math.exp(math.log(1.0 - rnd()) / SAMPLE_SIZE)
        w = min(self._sample_w, 1.0 - 1e-16)
        self._sample_next = k + int(math.log(1.0 - rnd()) / math.log(1.0 - w)) + 1

    # ---- outputs ---------------------------------------------------------------------------------------

    def t0_ns(self) -> int | None:
        return min(self.stage_first_sent.values()) if self.stage_first_sent else None

    def cdfs(self) -> dict[str, dict[str, list[list[float]]]]:
        """metric -> stage -> [[ms, fraction], ...] from the HDR histograms."""
        out: dict[str, dict[str, list[list[float]]]] = {}
        for stage in list(self._buf):
            self._flush_light(stage)
        metrics = (
            {st: agg.metrics for st, agg in self.aggs.items()} | self._light_metrics | self._given_metrics
        )
        for name in CDF_METRICS:
            per: dict[str, list[list[float]]] = {}
            for stage, mets in sorted(metrics.items()):
                m = mets[name]
                if m.count == 0:
                    continue
                pts: list[list[float]] = []
                for p, v in zip(_CDF_GRID, _percentiles_ms(m, _CDF_GRID), strict=True):
                    if p == 0.0:
                        v = m.min_ns / 1e6
                    elif p == 100.0:
                        v = m.max_ns / 1e6
                    if pts and pts[-1][0] == v:
                        pts[-1][1] = p / 100
                    else:
                        pts.append([v, p / 100])
                per[str(stage)] = pts
            if per:
                out[name] = per
        return out

    def timeline(self) -> dict[str, Any]:
        """Binned series over the whole run (seconds since the first request), with stage starts."""
        if not self.bins:
            return {"bin_s": 1, "t": [], "stage_starts": []}
        lo, hi = min(self.bins), max(self.bins)
        n = hi - lo + 1
        width = max(1, math.ceil(n / MAX_BINS))
        nb = math.ceil(n / width)
        sent = [0.0] * nb
        done = [0.0] * nb
        failed = [0.0] * nb
        toks = [0.0] * nb
        tsum = [0.0] * nb
        tcnt = [0.0] * nb
        ends = [0.0] * nb
        for sec, row in self.bins.items():
            i = (sec - lo) // width
            sent[i] += row[0]
            done[i] += row[1]
            failed[i] += row[2]
            toks[i] += row[3]
            tsum[i] += row[4]
            tcnt[i] += row[5]
            ends[i] += row[6]
        in_flight = []
        cur = 0.0
        for i in range(nb):
            cur += sent[i] - ends[i]
            in_flight.append(cur)
        errors = {}
        for kind, kb in sorted(self.err_bins.items()):
            arr = [0.0] * nb
            for sec, c in kb.items():
                arr[(sec - lo) // width] += c
            errors[kind] = [a / width for a in arr]
        t0 = self.t0_ns() or lo * 1_000_000_000
        return {
            "bin_s": width,
            "t": [(lo + i * width) - t0 / 1e9 for i in range(nb)],
            "in_flight": in_flight,
            "sent_per_s": [x / width for x in sent],
            "completed_per_s": [x / width for x in done],
            "failed_per_s": [x / width for x in failed],
            "output_tokens_per_s": [x / width for x in toks],
            "ttft_mean_ms": [(tsum[i] / tcnt[i] / 1e6) if tcnt[i] else None for i in range(nb)],
            "errors_per_s": errors,
            "stage_starts": [[stage, (ns - t0) / 1e9] for stage, ns in sorted(self.stage_first_sent.items())],
        }

    def samples(self) -> list[dict[str, Any]]:
        t0 = self.t0_ns() or 0
        out = []
        for r in self.sample:
            r = dict(r)
            r["t_s"] = (r.pop("sent_ns") - t0) / 1e9
            out.append(r)
        out.sort(key=lambda r: r["t_s"])
        return out


def _percentiles_ms(m: Any, grid: tuple[float, ...]) -> list[float]:
    """Many percentiles of a :class:`~evalscope.perf.aggregate.Metric` in one pass over its HDR counts.

    Same answer as ``Metric.percentile_ms`` for each (HDR's rank rule, clamped to the exact min / max), but
    one cumulative sum instead of one Python scan of the counts array per percentile.
    """
    import numpy as np

    hist = m.hist
    counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len].astype(np.int64)
    cum = np.cumsum(counts)
    total = int(cum[-1]) if cum.size else 0
    out = []
    for p in grid:
        if total == 0:
            out.append(m.min_ns / 1e6)
            continue
        target = max(int(p / 100 * total + 0.5), 1)
        idx = int(np.searchsorted(cum, target))
        v = hist.get_value_from_index(idx)
        us = hist.get_highest_equivalent_value(v) if p else hist.get_lowest_equivalent_value(v)
        out.append(min(max(float(us) * 1000.0, m.min_ns), m.max_ns) / 1e6)
    return out


class _LightRec:
    """The few attributes :meth:`PerfAccumulator._bin` reads, straight from a record dict."""

    __slots__ = ("completion_tokens", "end_ns", "error", "first_token_ns", "http_status", "sent_ns")

    def __init__(self, d: dict[str, Any]) -> None:
        self.sent_ns = d["sent_ns"]
        self.end_ns = d.get("end_ns")
        self.first_token_ns = d.get("first_token_ns")
        self.completion_tokens = d.get("completion_tokens")
        self.http_status = d.get("http_status")
        err = d.get("error")
        if err is None:
            self.error = None
        else:  # imported only for an error line: this runs once per line of records.jsonl
            from evalscope.engine.records import ErrorInfo

            self.error = ErrorInfo.from_dict(err)


def light_record(d: dict[str, Any], stage: int) -> dict[str, Any]:
    """The fields of a perf record that the sample table shows (ms; no event list)."""
    sent = d["sent_ns"]
    ft = d.get("first_token_ns")
    end = d.get("end_ns")
    lt = d.get("last_token_ns")
    ct = d.get("completion_tokens")
    err = d.get("error") or {}
    tpot = None
    if ct and ct > 1 and ft is not None and lt is not None:
        tpot = (lt - ft) / (ct - 1) / 1e6
    return {
        "id": d.get("id"),
        "stage": stage,
        "status": d.get("status"),
        "sent_ns": sent,
        "ttft_ms": None if ft is None else (ft - sent) / 1e6,
        "tpot_ms": tpot,
        "e2e_ms": None if end is None else (end - sent) / 1e6,
        "prompt_tokens": d.get("prompt_tokens"),
        "completion_tokens": ct,
        "finish_reason": d.get("finish_reason"),
        "http_status": d.get("http_status"),
        "error": (f"{err.get('kind')}: {str(err.get('message') or '')[:300]}" if err else None),
        "worker": d.get("worker"),
    }


def _stage_params(manifest: dict[str, Any] | None, stage: int) -> tuple[int, int | None, float | None]:
    cfg = (manifest or {}).get("config") or {}
    par = list(cfg.get("parallel") or [1])
    num = list(cfg.get("number") or [])
    p = par[min(stage, len(par) - 1)] if par else 1
    n = num[stage] if stage < len(num) else None
    return int(p), n, cfg.get("rate")


def recomputed_stages(acc: PerfAccumulator, manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Stage summaries rebuilt from records, for runs that ended before writing ``summary.json``."""
    from evalscope.perf.summary import stage_summary

    out = []
    for stage, agg in sorted(acc.aggs.items()):
        par, num, rate = _stage_params(manifest, stage)
        s = stage_summary(
            agg,
            stage=stage,
            parallel=par,
            concurrency_cap=par,
            rate=rate,
            number=num,
            client={"trustworthy": None, "reason": "recomputed from records.jsonl (no summary.json)"},
        )
        out.append(s)
    return out


def knee(stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The stage with the most throughput per unit of median latency (Kleinrock's power), for 3+ stages."""
    pts = []
    for s in stages:
        thr = (s.get("throughput") or {}).get("requests_per_s")
        lat = (s.get("e2e_latency") or {}).get("p50")
        if thr and lat:
            pts.append((thr / lat, s.get("stage")))
    if len(pts) < 3:
        return None
    best = max(pts, key=lambda x: x[0])
    return {"stage": best[1], "rule": "max requests/s divided by median E2E latency (power)"}


def perf_model(run_dir: Path, acc: PerfAccumulator | None = None) -> dict[str, Any]:
    """The perf report model; pass ``acc`` (already fed) to reuse a live accumulator (the app)."""
    manifest = _load_json(run_dir / "manifest.json")
    summary = _load_json(run_dir / "summary.json")
    records = run_dir / "records.jsonl"
    from_hist = False
    if acc is None:
        cfg = (manifest or {}).get("config") or {}
        have_summary = isinstance(summary, dict) and bool(summary.get("stages"))
        acc = PerfAccumulator(profile=str(cfg.get("metric_profile") or "default"), light=have_summary)
        from_hist = acc.use_histograms(_load_json(run_dir / HISTOGRAMS_FILE))
        acc.feed_file(records)
    stages: list[dict[str, Any]]
    if isinstance(summary, dict) and summary.get("stages"):
        stages = list(summary["stages"])
        source = "summary.json"
    else:
        stages = recomputed_stages(acc, manifest)
        source = "records.jsonl (summary.json missing: recomputed)"
    status = (manifest or {}).get("status") or (summary or {}).get("status") or "unknown"
    target = (summary or {}).get("target") or (manifest or {}).get("target") or {}
    model = {
        "schema": "evalscope.report/1",
        "kind": "perf",
        "run_id": run_dir.name,
        "status": status,
        "title": f"perf {run_dir.name}",
        "target": target,
        "manifest": manifest,
        "summary": summary,
        "stages": stages,
        "stages_source": source,
        "records": acc.records,
        "bad_lines": acc.bad_lines,
        "cdf": acc.cdfs(),
        "cdf_source": HISTOGRAMS_FILE
        if from_hist
        else "records.jsonl"
        if acc.records
        else "summary percentiles",
        "timeline": acc.timeline(),
        "knee": knee(stages),
        "samples": acc.samples(),
        "sample_of": acc.records,
    }
    if not acc.records:
        if not from_hist:
            model["cdf"] = cdf_from_percentiles(stages)
        model["timeline"] = timeline_from_summary(stages)
    return dict(redact(model))


def cdf_from_percentiles(stages: list[dict[str, Any]]) -> dict[str, dict[str, list[list[float]]]]:
    """Step CDFs through the summary's percentiles when no records are left."""
    out: dict[str, dict[str, list[list[float]]]] = {}
    for name in CDF_METRICS:
        per = {}
        for s in stages:
            st = s.get(name)
            if not isinstance(st, dict):
                continue
            pts = [[st["min"], 0.0]] if st.get("min") is not None else []
            for k, v in st.items():
                if k.startswith("p") and k[1:].isdigit() and v is not None:
                    digits = k[1:]
                    p = float(digits[:2] + "." + digits[2:]) if len(digits) > 2 else float(digits)
                    pts.append([v, p / 100])
            if st.get("max") is not None:
                pts.append([st["max"], 1.0])
            pts.sort()
            if pts:
                per[str(s.get("stage", 0))] = pts
        if per:
            out[name] = per
    return out


def timeline_from_summary(stages: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-second timeline the summary keeps, stages laid end to end."""
    t: list[float] = []
    cols: dict[str, list[Any]] = {"in_flight": [], "completed_per_s": [], "failed_per_s": []}
    cols["output_tokens_per_s"] = []
    starts = []
    off = 0.0
    for s in stages:
        starts.append([s.get("stage", 0), off])
        tl = s.get("timeline") or []
        for row in tl:
            t.append(off + row.get("t", 0))
            cols["in_flight"].append(row.get("in_flight"))
            cols["completed_per_s"].append(row.get("completed"))
            cols["failed_per_s"].append(row.get("failed"))
            cols["output_tokens_per_s"].append(row.get("output_tokens"))
        off += max(len(tl), math.ceil(s.get("duration_s") or 0))
    return {"bin_s": 1, "t": t, **cols, "ttft_mean_ms": [], "errors_per_s": {}, "stage_starts": starts}


# ---- eval --------------------------------------------------------------------------------------------------

#: Text kept per field of a sample in the self-contained report (the app serves whole texts).
TEXT_CAP = 4000
#: Bytes of sample text the self-contained eval report embeds at most.
SAMPLES_BUDGET = 3_000_000


def prompt_text(prompt: Any) -> str:
    """A chat prompt (list of messages) or plain prompt as readable text."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        parts = []
        for m in prompt:
            if isinstance(m, dict):
                content = m.get("content")
                if isinstance(content, list):
                    content = " ".join(
                        str(c.get("text", c)) if isinstance(c, dict) else str(c) for c in content
                    )
                parts.append(f"[{m.get('role', '?')}]\n{content}")
            else:
                parts.append(str(m))
        return "\n\n".join(parts)
    return "" if prompt is None else str(prompt)


def sample_flags(e: dict[str, Any]) -> dict[str, bool]:
    """Which viewer filters a journal entry falls under (they overlap: a wrong answer can be truncated)."""
    scored = e.get("status") == "scored"
    score = e.get("score")
    correct = scored and isinstance(score, int | float) and score >= 1.0
    return {
        "correct": bool(correct),
        "wrong": bool(scored and not correct),
        "unparsed": bool(scored and e.get("parsed") is False),
        "errored": e.get("status") != "scored",
        "truncated": e.get("finish_reason") == "length",
    }


def sample_view(e: dict[str, Any], cap: int | None = TEXT_CAP) -> dict[str, Any]:
    """One journal entry as the sample viewer shows it (texts capped at ``cap`` characters)."""

    def cut(s: Any) -> Any:
        if s is None:
            return None
        s = s if isinstance(s, str) else orjson.dumps(s, default=str).decode()
        if cap is not None and len(s) > cap:
            return s[:cap] + f"\n… [{len(s) - cap} more characters: open the run in `evalscope app`]"
        return s

    err = e.get("error")
    flags = sample_flags(e)
    return {
        "benchmark": e.get("benchmark"),
        "id": str(e.get("sample_id")),
        "repeat": e.get("repeat", 0),
        "subset": e.get("subset"),
        "status": e.get("status"),
        "score": e.get("score"),
        "flags": [k for k, v in flags.items() if v],
        "extracted": cut(e.get("extracted")),
        "gold": cut(e.get("gold")),
        "finish_reason": e.get("finish_reason"),
        "prompt": cut(prompt_text(e.get("prompt"))),
        "output": cut(e.get("output")),
        "reasoning": cut(e.get("reasoning")),
        "latency_s": e.get("latency_s"),
        "ttft_s": e.get("ttft_s"),
        "cached": e.get("cached"),
        "error": cut(err if isinstance(err, str) else (orjson.dumps(err).decode() if err else None)),
    }


def _mean_se(values: list[float]) -> tuple[float | None, float | None]:
    n = len(values)
    if not n:
        return None, None
    m = math.fsum(values) / n
    if n < 2:
        return m, None
    var = math.fsum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var / n)


def read_latest(path: Path) -> list[dict[str, Any]]:
    """The last entry of each (sample, repeat) of a journal, tolerating a torn last line."""
    from evalscope.eval.journal import latest_entries, read_journal

    entries, _ = read_journal(path)
    return list(latest_entries(entries).values())


def _eval_perf(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Latency CDFs and a completion timeline from the journal (requests actually sent, not cache hits)."""
    live = [e for e in entries if not e.get("cached") and e.get("status") == "scored"]

    def cdf(key: str) -> list[list[float]]:
        vals = sorted(float(e[key]) * 1000 for e in live if e.get(key) is not None)
        n = len(vals)
        if not n:
            return []
        step = max(1, n // 400)
        pts = [[vals[i], (i + 1) / n] for i in range(0, n, step)]
        if pts[-1][1] != 1.0:
            pts.append([vals[-1], 1.0])
        return pts

    times = sorted(float(e["time"]) for e in entries if isinstance(e.get("time"), int | float))
    tl: dict[str, Any] = {"bin_s": 1, "t": [], "completed_per_s": []}
    if times:
        span = times[-1] - times[0]
        width = max(1, math.ceil(span / MAX_BINS))
        nb = int(span // width) + 1
        counts = [0.0] * nb
        for t in times:
            counts[int((t - times[0]) // width)] += 1
        tl = {
            "bin_s": width,
            "t": [i * width for i in range(nb)],
            "completed_per_s": [c / width for c in counts],
        }
    return {"cdf": {"ttft": cdf("ttft_s"), "latency": cdf("latency_s")}, "timeline": tl}


def eval_model(run_dir: Path, sample_budget: int | None = SAMPLES_BUDGET) -> dict[str, Any]:
    """The eval report model: scores, rates, subset breakdown, samples (within a byte budget), performance."""
    from evalscope.eval.journal import iter_journals

    manifest = _load_json(run_dir / "manifest.json")
    reports: dict[str, dict[str, Any]] = {}
    rdir = run_dir / "reports"
    if rdir.is_dir():
        for mdir in sorted(p for p in rdir.iterdir() if p.is_dir()):
            for f in sorted(mdir.glob("*.json")):
                rep = _load_json(f)
                if isinstance(rep, dict):
                    reports.setdefault(f.stem, rep)
    benches: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    all_entries: list[dict[str, Any]] = []
    used = 0
    embedded_all = True
    total_samples = 0
    names = [name for name, _ in iter_journals(run_dir)]
    for name in sorted(set(names) | set(reports)):
        path = run_dir / "journal" / f"{name}.jsonl"
        entries = read_latest(path) if path.is_file() else []
        all_entries.extend(entries)
        rep = reports.get(name)
        scored = [e for e in entries if e.get("status") == "scored"]
        score_vals = [float(e.get("score") or 0.0) for e in scored]
        mean, se = _mean_se(score_vals)
        subsets: dict[str, list[float]] = {}
        for e in scored:
            subsets.setdefault(str(e.get("subset")), []).append(float(e.get("score") or 0.0))
        counts = {k: 0 for k in ("correct", "wrong", "unparsed", "errored", "truncated")}
        for e in entries:
            for k, v in sample_flags(e).items():
                counts[k] += v
        n = len(scored)
        bench = {
            "name": name,
            "metric": (rep or {}).get("metric", "score"),
            "score": (rep or {}).get("score", mean),
            "stderr": (rep or {}).get("stderr", se),
            "num_samples": (rep or {}).get("num_samples", n),
            "unparsed_rate": (rep or {}).get("unparsed_rate", counts["unparsed"] / n if n else 0.0),
            "truncated_rate": (rep or {}).get("truncated_rate", counts["truncated"] / n if n else 0.0),
            "errored": (rep or {}).get("errored", counts["errored"]),
            "errored_rate": counts["errored"] / len(entries) if entries else 0.0,
            "errors": (rep or {}).get("errors", {}),
            "source": "report" if rep else "journal (no report: run did not finish)",
            "journal_entries": len(entries),
            "counts": counts,
            "subsets": [],
            "settings": {
                k: (rep or {}).get(k)
                for k in ("prompt_version", "few_shot", "generation", "dataset_hash", "limit", "repeats")
            },
        }
        rep_subs = {s.get("name"): s for s in (rep or {}).get("subsets") or []}
        for sub in sorted(set(subsets) | set(rep_subs)):
            vals = subsets.get(sub, [])
            m, s = _mean_se(vals)
            rs = rep_subs.get(sub) or {}
            bench["subsets"].append(
                {
                    "name": sub,
                    "score": rs.get("score", m),
                    "stderr": s,
                    "num_samples": rs.get("num_samples", len(vals)),
                }
            )
        benches.append(bench)
        for e in entries:
            total_samples += 1
            if sample_budget is not None and used > sample_budget:
                embedded_all = False
                continue
            view = sample_view(e)
            used += sum(
                len(x) for x in (view["prompt"], view["output"], view["reasoning"]) if isinstance(x, str)
            )
            samples.append(view)
    perf_block = next((r.get("performance") for r in reports.values() if r.get("performance")), None)
    if perf_block is None and isinstance(manifest, dict):
        perf_block = manifest.get("performance")
    model_name = (manifest or {}).get("model") or next(
        (r.get("model") for r in reports.values() if r.get("model")), None
    )
    model = {
        "schema": "evalscope.report/1",
        "kind": "eval",
        "run_id": run_dir.name,
        "status": (manifest or {}).get("status", "unknown"),
        "title": f"eval {run_dir.name}",
        "model": model_name,
        "manifest": manifest,
        "benchmarks": benches,
        "performance": perf_block,
        "perf_detail": _eval_perf(all_entries),
        "samples": samples,
        "samples_total": total_samples,
        "samples_embedded_all": embedded_all,
    }
    return dict(redact(model))


# ---- listing -----------------------------------------------------------------------------------------------


def list_runs(outputs: Path, max_depth: int = 2) -> list[dict[str, Any]]:
    """Every run directory under ``outputs`` (this directory and up to ``max_depth`` levels below)."""
    out = []

    def visit(d: Path, depth: int) -> None:
        try:
            children = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for c in children:
            if (c / "manifest.json").is_file() or (c / "records.jsonl").is_file():
                out.append(run_entry(c, outputs))
            elif depth < max_depth:
                visit(c, depth + 1)

    if (outputs / "manifest.json").is_file():
        out.append(run_entry(outputs, outputs.parent))
    else:
        visit(outputs, 1)
    out.sort(key=lambda r: (r.get("started") or "", r["id"]), reverse=True)
    return out


def run_entry(run_dir: Path, root: Path) -> dict[str, Any]:
    """One line of the run list: id (path under the outputs directory), kind, status, model, size."""
    m = _load_json(run_dir / "manifest.json") or {}
    try:
        kind = run_kind(run_dir)
    except RunDirError:
        kind = "unknown"
    started = m.get("started_at")
    if started is None and (m.get("sessions") or [{}])[0].get("started"):
        import time

        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m["sessions"][0]["started"]))
    model = (m.get("target") or {}).get("model") or m.get("model")
    size = 0
    for p in (run_dir / "records.jsonl",):
        if p.is_file():
            size += p.stat().st_size
    jdir = run_dir / "journal"
    if jdir.is_dir():
        size += sum(p.stat().st_size for p in jdir.glob("*.jsonl"))
    cfg = m.get("config") or {}
    return dict(
        redact(
            {
                "id": os.path.relpath(run_dir, root),
                "kind": kind,
                "status": m.get("status", "unknown"),
                "started": started,
                "model": model,
                "datasets": cfg.get("datasets") if kind == "eval" else None,
                "records": m.get("records_written"),
                "data_bytes": size,
                "has_report": (run_dir / "report.html").is_file(),
            }
        )
    )
