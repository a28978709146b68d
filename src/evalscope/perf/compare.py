"""``evalscope perf compare RUN_A RUN_B``: the differences between two runs, and which are beyond the noise.

Stages are paired in order (with ``--repeats``, each repeated stage group is one entry). A difference is
*beyond noise* when:

- both runs have repeats: the difference of the means exceeds the 95% interval of that difference
  (``sqrt(ci_a^2 + ci_b^2)`` from the per-run Student t intervals);
- otherwise, for per-request latencies (TTFT, E2E: mean and percentiles): a bootstrap over the two runs'
  records (2,000 resamples, seeded) gives a 95% interval of the difference that excludes 0;
- otherwise (throughput of single runs) the noise is unknown and the row is marked ``?``.

May import: ``engine.records``, ``perf.sla``, ``perf.probe`` (metric names), ``errors``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from evalscope.errors import ConfigError
from evalscope.perf.probe import HEADLINE
from evalscope.perf.sla import metric_value, percentile_of

BOOTSTRAP = 2000
#: Record-level values the bootstrap can resample: metric suffix -> how to read it from a record (ms).
_RECORD_METRICS = ("ttft", "e2e_latency")


def _load(path: Path) -> tuple[dict[str, Any], Path]:
    p = Path(path)
    run_dir = p.parent if p.is_file() else p
    f = run_dir / "summary.json"
    try:
        return orjson.loads(f.read_bytes()), run_dir
    except FileNotFoundError:
        raise ConfigError(f"{str(p)!r} has no summary.json", "pass a perf run directory") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{str(f)!r} is not valid JSON ({exc})") from None


def _entries(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """(label, metrics {name: {mean, ci95}}, stage indices) per comparable entry of a run."""
    reps = summary.get("repeats")
    if reps:
        return [
            {
                "label": f"parallel {r['parallel']} rate {r['rate']}",
                "metrics": r["metrics"],
                "stages": r["stages"],
            }
            for r in reps
        ]
    out = []
    for s in summary.get("stages", []):
        label = f"parallel {s.get('parallel')} rate {s.get('rate')}"
        metrics = {m: {"mean": metric_value(s, m), "ci95": None, "n": 1} for m in HEADLINE}
        out.append({"label": label, "metrics": metrics, "stages": [s.get("stage")]})
    return out


def _record_values(run_dir: Path, stages: list[int], metric: str) -> np.ndarray:
    from evalscope.engine.records import RequestRecord

    want = set(stages)
    vals: list[float] = []
    path = run_dir / "records.jsonl"
    if not path.exists():
        return np.zeros(0)
    with open(path, "rb") as f:
        for line in f:
            try:
                d = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if d.get("stage") not in want or d.get("status") != "ok":
                continue
            rec = RequestRecord.from_dict(d)
            ns = rec.ttft_ns() if metric == "ttft" else rec.e2e_ns()
            if ns is not None:
                vals.append(ns / 1e6)
    return np.asarray(vals, dtype=float)


def _stat(x: np.ndarray, name: str, axis: int = -1) -> Any:
    q = percentile_of(name)
    if q is not None:
        return np.percentile(x, q, axis=axis)
    return x.mean(axis=axis)


def bootstrap_beyond(a: np.ndarray, b: np.ndarray, name: str, seed: int = 0) -> bool | None:
    """Whether the 95% bootstrap interval of stat(b) - stat(a) excludes 0 (None: too few samples)."""
    if len(a) < 10 or len(b) < 10:
        return None
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), (BOOTSTRAP, len(a)))
    ib = rng.integers(0, len(b), (BOOTSTRAP, len(b)))
    diff = _stat(b[ib], name, axis=1) - _stat(a[ia], name, axis=1)
    lo, hi = np.percentile(diff, [2.5, 97.5])
    return bool(lo > 0 or hi < 0)


def compare(run_a: Path, run_b: Path) -> list[dict[str, Any]]:
    """Rows of (entry, metric, a, b, diff, relative diff, beyond noise True/False/None)."""
    sa, da = _load(run_a)
    sb, db = _load(run_b)
    rows: list[dict[str, Any]] = []
    for ea, eb in zip(_entries(sa), _entries(sb), strict=False):
        for m in HEADLINE:
            a, b = ea["metrics"].get(m) or {}, eb["metrics"].get(m) or {}
            va, vb = a.get("mean"), b.get("mean")
            if va is None or vb is None:
                continue
            beyond: bool | None = None
            if a.get("ci95") is not None and b.get("ci95") is not None:
                beyond = abs(vb - va) > math.hypot(a["ci95"], b["ci95"])
            else:
                suffix = m.split("_", 1)[1] if "_" in m else ""
                if suffix in _RECORD_METRICS:
                    beyond = bootstrap_beyond(
                        _record_values(da, ea["stages"], suffix), _record_values(db, eb["stages"], suffix), m
                    )
            rows.append(
                {
                    "entry": f"{ea['label']} vs {eb['label']}" if ea["label"] != eb["label"] else ea["label"],
                    "metric": m,
                    "a": va,
                    "b": vb,
                    "diff": vb - va,
                    "rel": (vb - va) / abs(va) if va else None,
                    "beyond_noise": beyond,
                }
            )
    return rows


def render(rows: list[dict[str, Any]], run_a: str, run_b: str) -> str:
    """A plain-text table; ``*`` marks a difference beyond the noise, ``?`` one whose noise is unknown."""
    out = [f"A: {run_a}", f"B: {run_b}", ""]
    entry = None
    for r in rows:
        if r["entry"] != entry:
            entry = r["entry"]
            out.append(entry)
            out.append(f"  {'metric':<18} {'A':>12} {'B':>12} {'B-A':>12} {'rel':>8}  noise")
        rel = "-" if r["rel"] is None else f"{100 * r['rel']:+.1f}%"
        mark = {True: "* beyond", False: "  within", None: "  ?"}[r["beyond_noise"]]
        out.append(
            f"  {r['metric']:<18} {r['a']:>12.4g} {r['b']:>12.4g} {r['diff']:>+12.4g} {rel:>8}  {mark}"
        )
    if not rows:
        out.append("no comparable stages")
    return "\n".join(out)
