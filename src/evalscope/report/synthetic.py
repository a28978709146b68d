"""Synthetic perf run directories with the real record schema (for report benchmarks and tests).

Records are made as :class:`~evalscope.engine.records.RequestRecord` objects and written with the run's own
encoder; ``summary.json`` comes from the run's own aggregator and :func:`stage_summary`. So a report of a
synthetic run exercises exactly the code paths of a real one, at sizes (1e5 - 1e6 requests) a loaded test
machine cannot produce quickly against the simulator.
"""

from __future__ import annotations

import random
from array import array
from pathlib import Path
from typing import Any

from evalscope.engine.records import ErrorInfo, RequestRecord
from evalscope.perf.storage import encode_record, write_json_atomic


def make_perf_run(
    run_dir: Path,
    n: int,
    stages: tuple[int, ...] = (1, 4, 16),
    tokens: int = 8,
    error_every: int = 97,
    summary: bool = True,
    status: str = "completed",
    seed: int = 0,
) -> Path:
    """Write ``manifest.json``, ``records.jsonl`` (``n`` records over ``stages``) and ``summary.json``."""
    from evalscope.perf.aggregate import Aggregator
    from evalscope.perf.summary import SCHEMA, stage_summary

    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    per_stage = [n // len(stages) + (1 if i < n % len(stages) else 0) for i in range(len(stages))]
    t = 1_000_000_000_000
    summaries = []
    rid = 0
    with open(run_dir / "records.jsonl", "wb") as f:
        buf: list[bytes] = []
        for si, par in enumerate(stages):
            agg = Aggregator(t)
            start = t
            # a closed loop of `par` slots: latency grows with concurrency
            slots = [t] * par
            ttft_base = 20e6 * (1 + par / 8)
            itl = 8e6 * (1 + par / 32)
            for _ in range(per_stage[si]):
                k = min(range(par), key=slots.__getitem__)
                sent = slots[k]
                ttft = int(rng.lognormvariate(0, 0.25) * ttft_base)
                if error_every and rid % error_every == error_every - 1:
                    end = sent + int(ttft / 2)
                    rec = RequestRecord(
                        request_id=rid,
                        status="error",
                        scheduled_ns=sent,
                        sent_ns=sent,
                        end_ns=end,
                        http_status=503 if rid % 2 else None,
                        error=ErrorInfo(kind="http" if rid % 2 else "timeout", message="server overloaded"),
                    )
                else:
                    ev = array("q")
                    cur = sent + ttft
                    for _j in range(tokens):
                        ev.append(cur)
                        cur += int(rng.expovariate(1 / itl))
                    end = ev[-1] + 200_000
                    rec = RequestRecord(
                        request_id=rid,
                        status="ok",
                        scheduled_ns=sent,
                        sent_ns=sent,
                        first_byte_ns=ev[0],
                        first_choice_ns=ev[0],
                        first_token_ns=ev[0],
                        first_content_ns=ev[0],
                        last_token_ns=ev[-1],
                        end_ns=end,
                        http_status=200,
                        n_events=tokens,
                        prompt_tokens=128,
                        completion_tokens=tokens,
                        token_source="usage",
                        finish_reason="length",
                        event_ns=ev,
                    )
                slots[k] = end + 50_000
                agg.add(rec)
                d = rec.to_dict()
                d["stage"] = si
                buf.append(encode_record(d))
                rid += 1
                if len(buf) >= 4096:
                    f.write(b"".join(buf))
                    buf.clear()
            t = max(slots) + 1_000_000_000
            if summary:
                summaries.append(
                    stage_summary(
                        agg,
                        stage=si,
                        parallel=par,
                        concurrency_cap=par,
                        rate=None,
                        number=per_stage[si],
                        client={
                            "trustworthy": True,
                            "reason": None,
                            "loop_lag_ms": {"p99": 0.5},
                            "cpu_percent": 10.0,
                            "workers": 1,
                            "backend": "synthetic",
                        },
                        dispatch_start_ns=start,
                    )
                )
        f.write(b"".join(buf))
    config: dict[str, Any] = {
        "parallel": list(stages),
        "number": per_stage,
        "rate": None,
        "metric_profile": "default",
    }
    manifest = {
        "schema": "evalscope.perf.manifest/1",
        "run_id": run_dir.name,
        "command": "perf",
        "status": status,
        "config": config,
        "target": {
            "url": "http://synthetic.invalid/v1/chat/completions",
            "model": "synthetic",
            "api": "openai",
        },
        "started_at": "2026-01-01T00:00:00.000Z",
        "records_written": n,
    }
    write_json_atomic(run_dir / "manifest.json", manifest)
    if summary:
        write_json_atomic(
            run_dir / "summary.json",
            {
                "schema": SCHEMA,
                "run_id": run_dir.name,
                "status": status,
                "target": manifest["target"],
                "trustworthy": True,
                "stages": summaries,
            },
        )
    return run_dir
