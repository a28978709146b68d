"""Traffic shapes against the simulator's truth: trace replay, ramps, stage lists, multi-turn sessions."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalscope.perf.runner import run_perf
from evalscope.perf.shapes import ramp_offsets_ns
from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.integration]

BLOCK = 64


def _records(summary: dict[str, Any]) -> list[dict[str, Any]]:
    lines = (Path(summary["run_dir"]) / "records.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def _make_trace(path: Path, n: int, rate: float, seed: int = 0) -> list[dict[str, Any]]:
    """Requests of 1-4 blocks; half start with one of three shared system prompts (2 blocks each)."""
    rng = random.Random(seed)
    rows = []
    t = 0.0
    for i in range(n):
        t += rng.expovariate(rate) * 1000
        own = [10_000 + 10 * i + k for k in range(rng.randint(1, 2))]
        shared = [[1, 2], [3, 4], [5, 6]][i % 3] if i % 2 == 0 else []
        ids = shared + own
        rows.append(
            {
                "timestamp": round(t, 3),
                "input_length": len(ids) * BLOCK - rng.randint(0, BLOCK - 1),
                "output_length": rng.randint(2, 6),
                "hash_ids": ids,
            }
        )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return rows


@pytest.mark.timeout(120)
def test_trace_replay_times_and_shared_prefixes(tmp_path: Path, machine_load: Any) -> None:
    rows = _make_trace(tmp_path / "trace.jsonl", 150, rate=50.0)
    # The simulator on one CPU, this process (the client) on another: on a shared pair of CPUs each one's
    # bursts show in the other's timing (an ordinary --rate run has the same ~2 ms p99 unpinned).
    mask = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    cpus = sorted(mask)
    pin = len(cpus) >= 2
    sim_cfg = SimConfig(ttft_ms=5, itl_ms=1, output_tokens=8, prefix_cache=True, prefix_block=16)
    with SimProcess(sim_cfg, cpus={cpus[0]} if pin else None) as sim:
        try:
            if pin:
                os.sched_setaffinity(0, {cpus[1]})
            summary = run_perf(
                url=sim.url,
                dataset="trace",
                dataset_path=str(tmp_path / "trace.jsonl"),
                trace_block_size=BLOCK,
                outputs_dir=str(tmp_path / "out"),
                live=False,
            )
        finally:
            if pin:
                os.sched_setaffinity(0, mask)
        truth = {str(t["request_id"]): t for t in sim.fetch_truth()}
    assert summary["status"] == "completed"
    st = summary["stages"][0]
    assert st["requests"]["succeeded"] == len(rows)
    recs = sorted(_records(summary), key=lambda r: int(r["id"]))
    # the schedule is the trace's, to the nanosecond
    sched = np.array([r["scheduled_ns"] for r in recs], dtype=np.int64)
    want = np.array([round((r["timestamp"] - rows[0]["timestamp"]) * 1e6) for r in rows], dtype=np.int64)
    assert np.array_equal(sched - sched[0], want)
    # what was achieved: send lateness vs the trace, reported in the summary
    late_ms = np.array([r["sent_ns"] - r["scheduled_ns"] for r in recs]) / 1e6
    se = st["schedule_error"]
    assert se["vs"] == "trace" and se["requests"] == len(rows)
    assert se["max_ms"] == pytest.approx(late_ms.max(), abs=0.01)
    share, note = machine_load.foreign_share()
    # the benchmark (2,000 requests) shows p99 < 1 ms; CI gets 2 ms, and 50 ms on a loaded machine (says so)
    bound = 2.0 if share < 0.25 else 50.0
    assert np.percentile(late_ms, 99) < bound, note
    # the server saw the shared prefixes: cached tokens = the leading run of blocks some earlier request sent
    seen: list[list[int]] = []
    expected_total = 0
    for rec, row in zip(recs, rows, strict=True):
        ids = row["hash_ids"][: row["input_length"] // BLOCK]
        run = max(
            (
                len(list(itertools.takewhile(lambda ab: ab[0] == ab[1], zip(ids, s, strict=False))))
                for s in seen
            ),
            default=0,
        )
        seen.append(ids)
        t = truth[str(rec["id"])]
        assert t["cached_tokens"] == run * BLOCK, (rec["id"], ids)
        assert t["prompt_tokens"] == row["input_length"]
        expected_total += run * BLOCK
    assert expected_total > 0
    assert st["server"]["prefix_cache"]["cached_tokens"] == expected_total  # the client read it from usage


@pytest.mark.timeout(90)
def test_ramp_sends_on_the_ramp_schedule(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=2, itl_ms=1, output_tokens=2)) as sim:
        summary = run_perf(
            url=sim.url,
            ramp_up_strategy="linear",
            ramp_up_start_rate=20,
            ramp_up_end_rate=120,
            number=200,
            burstiness=2.0,
            seed=4,
            max_tokens=2,
            outputs_dir=str(tmp_path),
            live=False,
        )
    st = summary["stages"][0]
    assert st["requests"]["succeeded"] == 200 and st["schedule_error"]["vs"] == "ramp"
    recs = sorted(_records(summary), key=lambda r: int(r["id"]))
    sched = np.array([r["scheduled_ns"] for r in recs], dtype=np.int64)
    want = list(
        itertools.islice(
            ramp_offsets_ns("linear", 20, 120, number=200, duration_s=None, burstiness=2.0, seed=4), 200
        )
    )
    assert np.array_equal(sched - sched[0], np.array(want))
    g = np.diff(sched) / 1e9
    assert 1 / g[:40].mean() == pytest.approx(30, rel=0.35)  # progress 0..20 %: ~20..40/s
    assert 1 / g[-40:].mean() == pytest.approx(110, rel=0.35)  # progress 80..100 %: ~100..120/s


@pytest.mark.timeout(120)
def test_stage_list_from_a_yaml_config(tmp_path: Path) -> None:
    cfg = tmp_path / "load.yaml"
    cfg.write_text(
        "stages:\n  - {rate: 25, duration: 1.5}\n  - {parallel: 2, duration: 1}\n"
        "sleep_interval: 0\nmax_tokens: 3\nno_timestamp: true\nname: st\n"
    )
    with SimProcess(SimConfig(ttft_ms=5, itl_ms=1, output_tokens=3)) as sim:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "evalscope",
                "perf",
                "--url",
                sim.url,
                "--config",
                str(cfg),
                "--no-live",
                "--outputs-dir",
                str(tmp_path / "out"),
            ],
            capture_output=True,
            text=True,
            timeout=100,
            env=env,
            start_new_session=True,
        )
    assert out.returncode == 0, out.stderr
    s = json.loads((tmp_path / "out" / "st" / "summary.json").read_text())
    a, b = s["stages"]
    assert a["rate"] == 25 and a["concurrency_cap"] == 100_000 and b["rate"] is None and b["parallel"] == 2
    assert 1.2 < a["duration_s"] < 2.0 and 0.8 < b["duration_s"] < 1.5
    assert 25 <= a["requests"]["sent"] <= 55  # ~37 arrivals of a 25/s Poisson process in 1.5 s
    assert b["requests"]["sent"] > 50  # closed loop with 2 slots of ~8 ms


def _sharegpt(path: Path, n: int, turns: int) -> list[list[str]]:
    convs = []
    for i in range(n):
        users = [
            f"session {i} turn {k} " + " ".join(f"w{i}x{k}x{j}" for j in range(10 + 3 * k))
            for k in range(turns)
        ]
        convs.append(users)
    data = [
        {
            "conversations": [
                x for u in users for x in ({"from": "human", "value": u}, {"from": "gpt", "value": "old"})
            ]
        }
        for users in convs
    ]
    path.write_text(json.dumps(data))
    return convs


@pytest.mark.timeout(150)
@pytest.mark.parametrize("workers", [1, 2])
def test_multi_turn_sessions_send_the_growing_history(tmp_path: Path, workers: int) -> None:
    convs = _sharegpt(tmp_path / "sg.json", 6, 3)
    with SimProcess(
        SimConfig(ttft_ms=5, itl_ms=1, output_tokens=7, prefix_cache=True, prefix_block=4)
    ) as sim:
        summary = run_perf(
            url=sim.url,
            dataset="sharegpt",
            dataset_path=str(tmp_path / "sg.json"),
            multi_turn=True,
            think_time="0.05",
            parallel=2,
            number=6,
            workers=workers,
            outputs_dir=str(tmp_path / "out"),
            live=False,
        )
        truth = {str(t["request_id"]): t for t in sim.fetch_truth()}
    assert summary["status"] == "completed"
    st = summary["stages"][0]
    ss = st["sessions"]
    assert (ss["started"], ss["completed"], ss["failed"], ss["cut"]) == (6, 6, 0, 0)
    assert [t["succeeded"] for t in ss["by_turn"]] == [6, 6, 6]
    assert ss["turns_completed"]["histogram"] == {"3": 6} and ss["duration"]["count"] == 6
    recs = {r["id"]: r for r in _records(summary)}
    assert len(recs) == 18
    for sid in range(6):
        turns = [recs[f"{sid}-{k}"] for k in range(3)]
        assert len({r["worker"] for r in turns}) == 1  # a session stays on one worker
        users = None
        for k, r in enumerate(turns):
            t = truth[f"{sid}-{k}"]
            if k:
                prev, pt = turns[k - 1], truth[f"{sid}-{k - 1}"]
                # in order, after the think time (the event loop's timers may fire up to ~1 ms early)
                assert r["sent_ns"] >= prev["end_ns"] + 49_000_000
                # history = the previous prompt + the model's actual reply + the new user turn
                assert t["prompt_tokens"] == pt["prompt_tokens"] + pt["completion_tokens"] + len(
                    users_k(convs, sid, k)
                )
                assert t["cached_tokens"] == pt["prompt_tokens"] // 4 * 4  # the previous prompt was cached
            else:
                users = convs[sid]
                assert t["prompt_tokens"] == len(users[0].split())
    assert st["server"]["prefix_cache"]["cached_tokens"] > 0


def users_k(convs: list[list[str]], sid: int, k: int) -> list[str]:
    """The words of user turn ``k`` of session ``sid``: which conversation a session gets is its index."""
    return convs[sid][k].split()


@pytest.mark.timeout(90)
def test_prefix_length_shows_as_cached_tokens_on_the_built_in_simulator(tmp_path: Path) -> None:
    """No --url: the simulator started for the run has its prefix cache on when prompts share a prefix."""
    summary = run_perf(prefix_length=48, number=12, max_tokens=2, outputs_dir=str(tmp_path), live=False)
    assert summary["target"]["simulator"]["config"]["prefix_cache"] is True
    pc = summary["stages"][0]["server"]["prefix_cache"]
    assert pc["requests"] == 12 and pc["cached_tokens"] == 11 * 48  # every prompt after the first


@pytest.mark.timeout(90)
def test_sessions_are_cut_at_the_deadline_not_waited_for(tmp_path: Path) -> None:
    _sharegpt(tmp_path / "sg.json", 8, 3)
    with SimProcess(SimConfig(ttft_ms=5, itl_ms=1, output_tokens=4)) as sim:
        summary = run_perf(
            url=sim.url,
            dataset="sharegpt",
            dataset_path=str(tmp_path / "sg.json"),
            multi_turn=True,
            think_time="0.6",
            parallel=3,
            duration=1.0,
            outputs_dir=str(tmp_path / "out"),
            live=False,
        )
    st = summary["stages"][0]
    ss = st["sessions"]
    # turn 1 at ~0, turn 2 at ~0.6 s; turn 3 would be due after the 1 s deadline: every session is cut
    assert ss["completed"] == 0 and ss["failed"] == 0 and ss["cut"] == ss["started"] >= 3
    assert [t["turn"] for t in ss["by_turn"]] == ["1", "2"]
    assert st["duration_s"] < 1.5 and st["requests"]["failed"] == 0
