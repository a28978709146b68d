"""Plain-text forms of the report model: Markdown, CSV and JSON (``evalscope report --format``)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

_LAT = ("ttft", "ttfo", "tpot", "itl", "icl", "e2e_latency", "queue_time", "latency_from_schedule")


def _f(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        a = abs(v)
        return f"{v:.1f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3g}"
    return str(v)


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        if not obj and prefix:
            out[prefix] = None
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        out[prefix] = orjson.dumps(obj).decode() if obj else ""
    else:
        out[prefix] = obj
    return out


def _pct(v: Any) -> float | None:
    return None if v is None else round(float(v) * 100, 2)


def _md_table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_f(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(m: dict[str, Any]) -> str:
    out = [f"# evalscope {m['kind']} report: {m['run_id']}", "", f"Status: **{m.get('status')}**", ""]
    if m["kind"] == "perf":
        stages = m.get("stages") or []
        t = m.get("target") or {}
        out += [f"Target: {t.get('url')} (model {t.get('model')}); stages from {m.get('stages_source')}.", ""]
        out += ["## Throughput", ""]
        out.append(
            _md_table(
                ["stage", "parallel", "rate", "ok", "failed", "cancelled", "req/s", "out tok/s", "tot tok/s"],
                [
                    [
                        s.get("stage"),
                        s.get("parallel"),
                        s.get("rate"),
                        (s.get("requests") or {}).get("succeeded"),
                        (s.get("requests") or {}).get("failed"),
                        (s.get("requests") or {}).get("cancelled"),
                        (s.get("throughput") or {}).get("requests_per_s"),
                        (s.get("throughput") or {}).get("output_tokens_per_s"),
                        (s.get("throughput") or {}).get("total_tokens_per_s"),
                    ]
                    for s in stages
                ],
            )
        )
        out += ["", "## Latency (ms)", ""]
        rows = []
        for s in stages:
            for k in _LAT:
                st = s.get(k)
                if isinstance(st, dict):
                    rows.append(
                        [s.get("stage"), k]
                        + [st.get(x) for x in ("mean", "p50", "p90", "p99", "p999", "max")]
                    )
        out.append(_md_table(["stage", "metric", "mean", "p50", "p90", "p99", "p99.9", "max"], rows))
        out += ["", "## Client fidelity", ""]
        out.append(
            _md_table(
                ["stage", "trustworthy", "reason"],
                [
                    [
                        s.get("stage"),
                        (s.get("client") or {}).get("trustworthy"),
                        (s.get("client") or {}).get("reason"),
                    ]
                    for s in stages
                ],
            )
        )
        errs = [
            [s.get("stage"), e.get("kind"), e.get("count"), e.get("example") or e.get("message")]
            for s in stages
            for e in s.get("errors") or []
        ]
        if errs:
            out += ["", "## Errors", "", _md_table(["stage", "kind", "count", "message"], errs)]
    else:
        out += [f"Model: {m.get('model')}", "", "## Scores", ""]
        rows = []
        for b in m.get("benchmarks") or []:
            rows.append(
                [
                    b["name"],
                    b.get("metric"),
                    _pct(b.get("score")),
                    _pct(b.get("stderr")),
                    b.get("num_samples"),
                    _pct(b.get("unparsed_rate")),
                    _pct(b.get("truncated_rate")),
                    b.get("errored"),
                ]
            )
            for s in b.get("subsets") or [] if len(b.get("subsets") or []) > 1 else []:
                rows.append(
                    [
                        f"  {s['name']}",
                        "",
                        _pct(s.get("score")),
                        _pct(s.get("stderr")),
                        s.get("num_samples"),
                        "",
                        "",
                        "",
                    ]
                )
        out.append(
            _md_table(
                [
                    "benchmark / subset",
                    "metric",
                    "score %",
                    "± stderr",
                    "n",
                    "unparsed %",
                    "truncated %",
                    "errored",
                ],
                rows,
            )
        )
    return "\n".join(out) + "\n"


def to_csv(m: dict[str, Any]) -> str:
    """perf: one row per stage, every scalar field as a column; eval: one row per benchmark and subset."""
    buf = io.StringIO()
    if m["kind"] == "perf":
        rows = [
            _flat({k: v for k, v in s.items() if k not in ("timeline", "errors")})
            for s in m.get("stages") or []
        ]
    else:
        rows = []
        for b in m.get("benchmarks") or []:
            base = {
                k: b.get(k)
                for k in (
                    "metric",
                    "score",
                    "stderr",
                    "num_samples",
                    "unparsed_rate",
                    "truncated_rate",
                    "errored",
                )
            }
            rows.append({"benchmark": b["name"], "subset": "", **base})
            for s in b.get("subsets") or []:
                rows.append(
                    {
                        "benchmark": b["name"],
                        "subset": s["name"],
                        "metric": b.get("metric"),
                        "score": s.get("score"),
                        "stderr": s.get("stderr"),
                        "num_samples": s.get("num_samples"),
                    }
                )
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r.get(k) for k in cols})
    return buf.getvalue()


def to_json(m: dict[str, Any]) -> str:
    return orjson.dumps(m, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode() + "\n"
