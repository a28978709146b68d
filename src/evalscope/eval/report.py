"""Eval reports: one JSON per model x benchmark, and the console table.

``<run>/reports/<model>/<benchmark>.json`` holds the headline ``score`` (0-1), ``metric``, ``num_samples``,
``subsets`` and ``categories``, ``unparsed_rate``, ``truncated_rate``, ``errored``, the settings that make
scores comparable (prompt version, shots, generation settings, dataset hash, versions) and the endpoint's
performance during the eval. Nothing in it depends on timing except the ``performance`` block, so an
interrupted-then-resumed run produces the same report as an uninterrupted one (minus ``performance``/``run``).
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import orjson

from evalscope import __version__
from evalscope.eval.benchmarks.base import Benchmark, Sample, ScoreResult
from evalscope.eval.config import EvalConfig, scrub_secrets

#: Report keys that vary between runs of the same evaluation (excluded when comparing results).
VOLATILE_KEYS = ("performance", "run")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    vs = sorted(values)
    k = (len(vs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return vs[lo] if lo == hi else vs[lo] + (vs[hi] - vs[lo]) * (k - lo)


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    return {
        "mean": math.fsum(values) / len(values),
        "p50": _pct(values, 0.5),
        "p90": _pct(values, 0.9),
        "p99": _pct(values, 0.99),
        "max": max(values),
    }


def performance(entries: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    """Endpoint performance from this session's (non-cached) requests: TTFT, latency, tokens/s."""
    ok = [e for e in entries if e.get("ok")]
    lat = [float(e["latency_s"]) for e in ok if e.get("latency_s") is not None]
    ttft = [float(e["ttft_s"]) for e in ok if e.get("ttft_s") is not None]
    toks = sum(int(e.get("completion_tokens") or 0) for e in ok)
    per_req = [
        int(e["completion_tokens"]) / float(e["latency_s"])
        for e in ok
        if e.get("completion_tokens") and e.get("latency_s")
    ]
    return {
        "requests": len(entries),
        "succeeded": len(ok),
        "failed": len(entries) - len(ok),
        "wall_time_s": wall_s,
        "ttft_s": _stats(ttft),
        "latency_s": _stats(lat),
        "output_tokens": toks,
        "output_tokens_per_s": toks / wall_s if wall_s > 0 else None,
        "request_tokens_per_s_mean": math.fsum(per_req) / len(per_req) if per_req else None,
        "requests_per_s": len(entries) / wall_s if wall_s > 0 else None,
        "server": server_performance(ok),
    }


def server_performance(ok: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the server reported about the successful requests (None when it reported nothing): prefix-cache
    hit rate, reasoning tokens, llama.cpp decode / prefill speed and speculative acceptance."""
    out: dict[str, Any] = {}
    cached = [e for e in ok if isinstance(e.get("cached_tokens"), int)]
    if cached:
        c = sum(int(e["cached_tokens"]) for e in cached)
        p = sum(max(int(e.get("prompt_tokens") or 0), int(e["cached_tokens"])) for e in cached)
        out["prefix_cache"] = {"requests": len(cached), "cached_tokens": c, "hit_rate": c / p if p else None}
    reasoning = [int(e["reasoning_tokens"]) for e in ok if isinstance(e.get("reasoning_tokens"), int)]
    if reasoning:
        out["reasoning_tokens"] = {"requests": len(reasoning), "total": sum(reasoning)}
    tims = [e["timings"] for e in ok if isinstance(e.get("timings"), dict)]
    if tims:

        def rate(n: str, ms: str) -> float | None:
            t_ms = sum(float(t.get(ms, 0)) for t in tims)
            return 1000.0 * sum(float(t.get(n, 0)) for t in tims) / t_ms if t_ms > 0 else None

        out["timings"] = {
            "requests": len(tims),
            "prompt_tokens_per_s": rate("prompt_n", "prompt_ms"),
            "predicted_tokens_per_s": rate("predicted_n", "predicted_ms"),
        }
        drafts = sum(float(t.get("draft_n", 0)) for t in tims)
        if drafts:
            out["timings"]["draft_acceptance_rate"] = (
                sum(float(t.get("draft_n_accepted", 0)) for t in tims) / drafts
            )
    return out or None


def perf_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """What :func:`performance` needs from one journal line (one request of an earlier session)."""
    err = entry.get("error") or {}
    usage = entry.get("usage") or {}
    return {
        "latency_s": entry.get("latency_s"),
        "ttft_s": entry.get("ttft_s"),
        "completion_tokens": usage.get("completion_tokens"),
        "prompt_tokens": usage.get("prompt_tokens"),
        "cached_tokens": usage.get("cached_tokens"),
        "reasoning_tokens": usage.get("reasoning_tokens"),
        # the request succeeded unless the error came from the endpoint (a scorer error is not one)
        "ok": not err or err.get("kind") == "scoring",
        "time": entry.get("time"),
    }


def cumulative_performance(entries: list[dict[str, Any]], sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """Endpoint performance over every session of a run (``entries``: non-cached requests of all sessions).

    Rates use the summed wall time of the sessions. A session that ended without writing its counters (killed)
    gets the span from its start to its last journaled request, marked ``wall_time_estimated``.
    """
    starts = [float(s.get("started") or 0.0) for s in sessions]
    wall = 0.0
    sent = retries = reconnects = cuts = hits = 0
    rows: list[dict[str, Any]] = []
    for i, s in enumerate(sessions):
        row: dict[str, Any] = {"resumed": bool(s.get("resumed")), "eval_batch_size": s.get("eval_batch_size")}
        lo, hi = starts[i], starts[i + 1] if i + 1 < len(starts) else math.inf
        mine = [e for e in entries if e.get("time") is not None and lo <= float(e["time"]) < hi]
        row["requests"] = len(mine)
        if s.get("wall_time_s") is not None:
            row["wall_time_s"] = float(s["wall_time_s"])
            sent += int(s.get("requests_sent") or 0)
        else:
            row["wall_time_s"] = max((float(e["time"]) for e in mine), default=lo) - lo
            row["wall_time_estimated"] = True
            sent += len(mine)  # at least one HTTP request each; its retries are unknown
        wall += row["wall_time_s"]
        retries += int(s.get("retries") or 0)
        reconnects += int(s.get("reconnects") or 0)
        cuts += int(s.get("concurrency_cuts") or 0)
        hits += int(s.get("cache_hits") or 0)
        rows.append(row)
    perf = performance(entries, wall)
    perf.update(
        requests_sent=sent, retries=retries, reconnects=reconnects, concurrency_cuts=cuts, sessions=rows
    )
    if any("cache_hits" in s for s in sessions):
        perf["cache_hits"] = hits
    return perf


def build_report(
    name: str,
    bench: Benchmark,
    triples: list[tuple[Sample, int, ScoreResult, dict[str, Any]]],
    errored: list[dict[str, Any]],
    cfg: EvalConfig,
    fingerprint: dict[str, Any],
    model: str,
    endpoint: str,
    perf: dict[str, Any],
    errored_as_wrong: list[tuple[Sample, int, ScoreResult, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The report dict for one benchmark from its scored (sample, repeat, result, journal entry) tuples.

    ``score`` is over the answered (scored) samples; ``score_all`` is over every sample, the errored ones
    (``errored_as_wrong``, scored 0) counted as wrong, so a flaky endpoint cannot raise a score by failing.
    """
    agg = bench.aggregate([(s, r, res) for s, r, res, _e in triples]) if triples else {}
    n = len(triples)
    wrong = errored_as_wrong or []
    if wrong:
        everything = [(s, r, res) for s, r, res, _e in triples] + [(s, r, res) for s, r, res, _e in wrong]
        score_all = bench.aggregate(everything).get("score")
    else:
        score_all = agg.get("score", 0.0) if n else None
    unparsed = sum(1 for *_x, res, _e in triples if not res.parsed)
    truncated = sum(1 for *_x, e in triples if e.get("finish_reason") == "length")
    statuses = Counter(res.status for *_x, res, _e in triples)
    err_kinds = Counter(
        (e.get("error") or {}).get("kind", "unknown")
        + (
            f":{(e.get('error') or {}).get('http_status')}"
            if (e.get("error") or {}).get("http_status")
            else ""
        )
        for e in errored
    )
    samples_total = len({s.id for s, *_rest in triples} | {str(e.get("sample_id")) for e in errored})
    report: dict[str, Any] = {
        "benchmark": name,
        "model": model,
        "metric": agg.get("metric", getattr(bench, "metric", "accuracy")),
        "score": agg.get("score", 0.0) if n else None,
        "score_all": score_all,
        "stderr": agg.get("stderr"),
        "num_samples": n,
        "num_unique_samples": samples_total,
        "repeats": cfg.repeats,
        "subsets": agg.get("subsets", []),
        "categories": agg.get("categories", []),
        "unparsed": unparsed,
        "unparsed_rate": unparsed / n if n else 0.0,
        "truncated": truncated,
        "truncated_rate": truncated / n if n else 0.0,
        "errored": len(errored),
        "error_rate": len(errored) / (n + len(errored)) if n + len(errored) else 0.0,
        "errors": dict(sorted(err_kinds.items())),
        "statuses": dict(sorted(statuses.items())),
        "prompt_version": fingerprint.get("version"),
        "few_shot": fingerprint.get("few_shot"),
        "generation": fingerprint.get("generation"),
        "dataset_hash": fingerprint.get("data_hash"),
        "subset_list": fingerprint.get("subsets"),
        "args": fingerprint.get("args"),
        "endpoint": endpoint,
        "versions": {
            "evalscope": __version__,
            "benchmark": fingerprint.get("version"),
            "python": sys.version.split()[0],
        },
        "limit": cfg.limit,
    }
    for k, v in agg.items():
        if k not in report and k not in ("score", "stderr", "metric", "subsets", "categories"):
            report[k] = v
    report["performance"] = perf
    report["run"] = {"config": cfg.redacted_dict()}
    result: dict[str, Any] = scrub_secrets(report)
    return result


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its run-dependent parts (performance, run info)."""
    return {k: v for k, v in report.items() if k not in VOLATILE_KEYS}


def model_dir_name(model: str) -> str:
    """The report folder of ``model``: a local path (``/models/hf-tiny``, ``./m``, ``~/m``, or an existing
    directory, as ``transformers serve`` and vLLM want it) is named after its last component; a hub id
    (``org/name``) keeps its organisation (``org_name``). Anything but letters, digits and ``-_.=`` becomes
    ``_``."""
    name = model
    if model.startswith(("/", "./", "../", "~", "\\")) or os.path.isabs(model) or os.path.isdir(model):
        name = os.path.basename(os.path.normpath(os.path.expanduser(model))) or model
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name) or "model"


def write_report(run_dir: Path, model: str, name: str, report: dict[str, Any]) -> Path:
    d = run_dir / "reports" / model_dir_name(model)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2, default=str))
    os.replace(tmp, path)
    return path


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{v * 100:.2f}" if pct else f"{v:.4f}"


def print_table(model: str, reports: dict[str, dict[str, Any]], out: TextIO) -> None:
    """One table: model x benchmark rows, then subset / category rows indented."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"evalscope eval: {model}", show_lines=False)
    for col, just in (
        ("benchmark / subset", "left"),
        ("metric", "left"),
        ("score %", "right"),
        ("all %", "right"),
        ("± stderr", "right"),
        ("n", "right"),
        ("unparsed %", "right"),
        ("truncated %", "right"),
        ("errored", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for name, rep in reports.items():
        table.add_row(
            f"[bold]{name}[/bold]",
            str(rep.get("metric")),
            _fmt(rep.get("score")),
            _fmt(rep.get("score_all")),
            _fmt(rep.get("stderr")),
            str(rep.get("num_samples")),
            _fmt(rep.get("unparsed_rate")),
            _fmt(rep.get("truncated_rate")),
            str(rep.get("errored")),
        )
        subs = rep.get("subsets") or []
        if len(subs) > 1:
            for sub in subs:
                table.add_row(
                    f"  {sub['name']}",
                    "",
                    _fmt(sub.get("score")),
                    "",
                    "",
                    str(sub.get("num_samples")),
                    "",
                    "",
                    "",
                )
        for cat in rep.get("categories") or []:
            table.add_row(
                f"  \\[{cat['name']}]",  # \\[ : a literal bracket, not rich markup (which ate the name)
                "",
                _fmt(cat.get("score")),
                "",
                "",
                str(cat.get("num_samples")),
                "",
                "",
                "",
            )
    console = Console(file=out, width=120, force_terminal=False, color_system=None)
    console.print(table)
    perf: dict[str, Any] = {}
    for name, rep in reports.items():
        perf = rep.get("performance") or perf
        console.print(
            f"{name}: prompt v{rep.get('prompt_version')}, {rep.get('few_shot')}-shot, "
            f"generation {orjson.dumps(rep.get('generation')).decode()}, dataset {str(rep.get('dataset_hash'))[:12]}"
        )
    lat = (perf.get("latency_s") or {}).get("mean")
    ttft = (perf.get("ttft_s") or {}).get("mean")
    tps = perf.get("output_tokens_per_s")
    console.print(
        f"endpoint during the eval: {perf.get('requests', 0)} requests, TTFT "
        f"{'-' if ttft is None else f'{ttft * 1000:.0f} ms'}, latency {'-' if lat is None else f'{lat:.2f} s'}, "
        f"{'-' if tps is None else f'{tps:.0f}'} output tok/s{_server_note(perf.get('server'))}"
    )


def _server_note(server: dict[str, Any] | None) -> str:
    """``; prefix cache hit 35%, decode 550 tok/s (server)`` when the server reported such numbers."""
    if not server:
        return ""
    parts = []
    hit = (server.get("prefix_cache") or {}).get("hit_rate")
    if hit is not None:
        parts.append(f"prefix cache hit {100 * hit:.0f}%")
    t = server.get("timings") or {}
    if t.get("predicted_tokens_per_s") is not None:
        parts.append(f"server decode {t['predicted_tokens_per_s']:.0f} tok/s")
    if t.get("draft_acceptance_rate") is not None:
        parts.append(f"draft acceptance {100 * t['draft_acceptance_rate']:.0f}%")
    return "; " + ", ".join(parts) if parts else ""
