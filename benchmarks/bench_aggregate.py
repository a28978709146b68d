"""CPU per success of ``Aggregator.add`` (default profile), folded from columns and per record, and the longest
single ``add`` (a fold: a pause of the event loop).

Why: the aggregator runs once per finished request inside the measuring loop; its cost is part of the client's
per-request CPU (``bench_request_cpu.py``). This isolates it, in a warm loop, for both forms the aggregator
has: the columns folded by numpy (the default) and the per-record metric values (a plugin metric, goodput).
Each round feeds the same records to a fresh aggregator and reads every metric at the end (the last fold is
included). The pause is measured on 8-event and on 256-event streams (the peers' workload a), timing every
``add``: a fold holds the loop that long, and a read arriving meanwhile is stamped late by as much. The least of
the rounds' longest is quoted (a round's longest may also hold a preemption of this process).
Run: ``python benchmarks/bench_aggregate.py [--records 100000] [--rounds 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from array import array
from pathlib import Path

from evalscope.engine.records import RequestRecord
from evalscope.perf.aggregate import Aggregator


def record(i: int, events: int = 8) -> RequestRecord:
    sent = 10_000_000 + i * 1_000
    ev = array("q", [sent + 50_000 + k * 10_000 for k in range(events)])
    return RequestRecord(
        request_id=i,
        status="ok",
        scheduled_ns=sent,
        sent_ns=sent,
        first_byte_ns=sent + 40_000,
        first_choice_ns=sent + 45_000,
        first_token_ns=ev[0],
        first_content_ns=ev[0],
        last_token_ns=ev[-1],
        end_ns=ev[-1] + 5_000,
        http_status=200,
        n_events=events,
        prompt_tokens=128,
        completion_tokens=events,
        token_source="usage",
        finish_reason="stop",
        event_ns=ev,
    )


def once(recs: list[RequestRecord], columnar: bool) -> float:
    """µs of CPU per record for one fresh aggregator fed ``recs``, every metric read at the end."""
    agg = Aggregator(0)
    agg._columnar = columnar and agg._columnar
    t0 = time.process_time()
    for r in recs:
        agg.add(r)
    for m in agg.metrics.values():
        m.hist  # noqa: B018 - the read folds what is held
    return (time.process_time() - t0) / len(recs) * 1e6


def longest_add(recs: list[RequestRecord]) -> tuple[float, float]:
    """(the longest single ``add`` in µs, µs per record) for one fresh columnar aggregator fed ``recs``."""
    agg = Aggregator(0)
    clock = time.perf_counter_ns
    add = agg.add
    worst = 0
    t_start = clock()
    for r in recs:
        t0 = clock()
        add(r)
        took = clock() - t0
        if took > worst:
            worst = took
    return worst / 1000, (clock() - t_start) / len(recs) / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    recs = [record(i) for i in range(a.records)]
    rounds: dict[str, list[float]] = {"columns": [], "per_record": []}
    for _ in range(max(1, a.rounds)):  # alternating, so both see the same machine
        rounds["columns"].append(round(once(recs, True), 2))
        rounds["per_record"].append(round(once(recs, False), 2))
    out: dict[str, object] = {"bench": "aggregate", "records": a.records, "events_per_record": 8}
    for name, got in rounds.items():
        out[f"{name}_us_per_record"] = min(got)
        out[f"{name}_rounds"] = got
        print(f"{name:<12}{min(got):>8} µs per success (rounds {got})")
    long_recs = [record(i, 256) for i in range(max(1, a.records // 16))]
    for events, batch in ((8, recs), (256, long_recs)):
        pauses, costs = zip(*(longest_add(batch) for _ in range(max(1, a.rounds))), strict=True)
        out[f"longest_add_us_{events}_events"] = round(min(pauses), 1)
        out[f"longest_add_rounds_{events}_events"] = [round(p, 1) for p in pauses]
        out[f"wall_us_per_record_{events}_events"] = round(min(costs), 2)
        print(
            f"longest add, {events}-event streams: {min(pauses):.1f} µs "
            f"(rounds {[round(p, 1) for p in pauses]}; {min(costs):.2f} µs per record with the clock reads)"
        )
    print(json.dumps(out))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
