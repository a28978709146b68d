"""Traffic shapes: ramp send times (vLLM's semantics), stage lists, trace offsets, think times, config rules."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from evalscope.errors import ConfigError
from evalscope.perf._coordinator import plan_stages
from evalscope.perf.config import make_config
from evalscope.perf.sessions import SessionStats, parse_think_time
from evalscope.perf.shapes import (
    parse_stage_list,
    ramp_offsets_ns,
    ramp_rate,
    trace_offsets_cycled,
    trace_offsets_ns,
)


def ramp_times(
    strategy: str, start: float, end: float, n: int, burstiness: float = 1.0, seed: int = 0
) -> np.ndarray:
    it = ramp_offsets_ns(strategy, start, end, number=n, duration_s=None, burstiness=burstiness, seed=seed)
    return np.fromiter(itertools.islice(it, n), dtype=np.int64) / 1e9


@pytest.mark.parametrize("strategy", ["linear", "exponential"])
def test_ramp_hits_start_and_end_rates(strategy: str) -> None:
    n = 20000
    t = ramp_times(strategy, 10.0, 200.0, n, seed=3)
    assert t[0] == 0 and np.all(np.diff(t) >= 0)
    g = np.diff(t)
    head, tail = g[:1000], g[-1000:]  # progress 0..5 % and 95..100 %
    mid_head = ramp_rate(strategy, 10.0, 200.0, 0.025)
    mid_tail = ramp_rate(strategy, 10.0, 200.0, 0.975)
    assert 1 / head.mean() == pytest.approx(mid_head, rel=0.08)
    assert 1 / tail.mean() == pytest.approx(mid_tail, rel=0.08)
    # the very ends: the first and last gaps are drawn at (close to) the start and end rates
    k = np.arange(n - 1) / (n - 1)
    expected = np.array([ramp_rate(strategy, 10.0, 200.0, p) for p in k])
    # every gap i is drawn at rate r_i: the mean of gap * r_i is 1 (Exp(1) scaled), whatever i is
    assert float((g * expected).mean()) == pytest.approx(1.0, rel=0.03)


def test_ramp_exponential_midpoint_is_geometric_mean() -> None:
    assert ramp_rate("exponential", 4.0, 100.0, 0.5) == pytest.approx(20.0)
    assert ramp_rate("linear", 4.0, 100.0, 0.5) == pytest.approx(52.0)
    assert ramp_rate("linear", 4.0, 100.0, 0.0) == 4.0 and ramp_rate("linear", 4.0, 100.0, 1.0) == 100.0


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_ramp_gaps_are_gamma_with_the_burstiness(burstiness: float) -> None:
    """A flat ramp (start == end) is a gamma process: CV of the gaps = 1 / sqrt(burstiness)."""
    g = np.diff(ramp_times("linear", 50.0, 50.0, 20000, burstiness=burstiness, seed=1))
    assert 1 / g.mean() == pytest.approx(50.0, rel=0.05)
    assert g.std() / g.mean() == pytest.approx(1 / np.sqrt(burstiness), rel=0.08)
    # and in a real ramp, the gaps normalised by their rate have the same CV
    n = 20000
    t = ramp_times("exponential", 5.0, 500.0, n, burstiness=burstiness, seed=2)
    r = np.array([ramp_rate("exponential", 5.0, 500.0, i / (n - 1)) for i in range(n - 1)])
    z = np.diff(t) * r
    assert z.std() / z.mean() == pytest.approx(1 / np.sqrt(burstiness), rel=0.08)


def test_ramp_over_a_duration_reaches_the_end_rate_at_the_end() -> None:
    it = ramp_offsets_ns("linear", 20.0, 200.0, number=None, duration_s=10.0, seed=5)
    t = np.fromiter(itertools.takewhile(lambda x: x < 10e9, it), dtype=np.int64) / 1e9
    # expected count: integral of the rate over 10 s = 10 * (20 + 200) / 2 = 1100
    assert len(t) == pytest.approx(1100, rel=0.08)
    late = t[t > 9.0]
    assert len(late) / 1.0 == pytest.approx(ramp_rate("linear", 20.0, 200.0, 0.95), rel=0.15)


def test_ramp_is_seeded() -> None:
    a = ramp_times("linear", 1.0, 9.0, 100, seed=7)
    b = ramp_times("linear", 1.0, 9.0, 100, seed=7)
    assert np.array_equal(a, b)


def test_trace_offsets_scale_and_cycle() -> None:
    ts = [1000.0, 1000.5, 1002.0, 1010.0]
    assert list(trace_offsets_ns(ts)) == [0, 500_000, 2_000_000, 10_000_000]
    assert list(trace_offsets_ns(ts, base=1, scale=2.0)) == [0, 3_000_000, 19_000_000]
    cyc = list(itertools.islice(trace_offsets_cycled(ts, 0, 1.0), 6))
    # past the end: start over one mean gap (10 ms / 3) after the last request
    assert cyc[:4] == [0, 500_000, 2_000_000, 10_000_000]
    assert cyc[4] == round((10 + 10 / 3) * 1e6) and np.all(np.diff(cyc) > 0)


def test_stage_list_forms(tmp_path: Path) -> None:
    want = [{"rate": 5.0, "duration": 2.0}, {"parallel": 3, "number": 10}]
    assert parse_stage_list('[{"rate": 5, "duration": 2}, {"parallel": 3, "number": 10}]') == want
    y = tmp_path / "s.yaml"
    y.write_text("stages:\n  - {rate: 5, duration: 2}\n  - {parallel: 3, number: 10}\n")
    assert parse_stage_list(str(y)) == want
    j = tmp_path / "s.json"
    j.write_text(json.dumps(want))
    assert parse_stage_list(str(j)) == want


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('[{"duration": 2}]', "give rate"),
        ('[{"rate": 5}]', "give duration"),
        ('[{"rate": -1, "duration": 1}]', "rate must be"),
        ('[{"rate": 1, "duration": 1, "speed": 3}]', "unknown key 'speed'"),
        ("[]", "non-empty list"),
        ("nope.yaml", "neither a JSON list nor a file"),
    ],
)
def test_stage_list_errors_are_one_line(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        make_config(stages=value)
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg and "--stage-list" in msg


def test_plan_from_a_stage_list() -> None:
    cfg = make_config(stages=[{"rate": 8, "duration": 1.5}, {"parallel": 2, "duration": 1}], warmup=2)
    plan = plan_stages(cfg)
    assert [s.warmup for s in plan] == [True, False, False]
    s1, s2 = plan[1], plan[2]
    assert (s1.rate, s1.duration, s1.cap) == (8.0, 1.5, 100_000)  # open loop, no cap
    assert (s2.rate, s2.parallel, s2.cap, s2.duration) == (None, 2, 2, 1.0)  # closed loop


def test_plan_of_a_ramp() -> None:
    (default,) = plan_stages(make_config(ramp_up_strategy="linear", ramp_up_start_rate=1, ramp_up_end_rate=5))
    assert default.arrivals is not None and default.arrivals["number"] == 100  # the default request count
    cfg = make_config(ramp_up_strategy="exponential", ramp_up_start_rate=2, ramp_up_end_rate=50, number=300)
    (st,) = plan_stages(cfg)
    assert st.rate == 50 and st.arrivals is not None
    assert st.arrivals["kind"] == "ramp" and st.arrivals["number"] == 300
    assert cfg.concurrency_cap(st.parallel) == 100_000  # open loop: no cap unless --parallel is given
    # about a second of arrivals at the stage's rate is prewarmed, not the 1,024-connection ceiling
    assert cfg.prewarm_count(st.parallel, st.rate) == 50


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"ramp_up_strategy": "linear", "ramp_up_start_rate": 1}, "needs all of"),
        (
            {
                "ramp_up_strategy": "linear",
                "ramp_up_start_rate": 1,
                "ramp_up_end_rate": 5,
                "rate": 3,
                "number": 9,
            },
            "replaces --rate",
        ),
        ({"ramp_up_strategy": "sideways"}, "--ramp-up-strategy"),
        ({"multi_turn": True}, "conversations"),
        ({"think_time": "2"}, "add --multi-turn"),
        (
            {"multi_turn": True, "dataset": "sharegpt", "dataset_path": "x.json", "api": "openai-embeddings"},
            "replies to send back",
        ),
        (
            {"multi_turn": True, "dataset": "sharegpt", "dataset_path": "x.json", "think_time": "soon"},
            "think time",
        ),
        ({"dataset": "trace", "dataset_path": "t.jsonl", "rate": 3}, "trace's own times"),
        ({"stages": '[{"rate": 1, "duration": 1}]', "parallel": [1, 2]}, "replaces --parallel"),
        ({"stages": '[{"rate": 1, "duration": 1}]', "rate": 4}, "drop --rate"),
    ],
)
def test_shape_option_errors(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        make_config(**kwargs)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_think_time_specs() -> None:
    import random

    rng = random.Random(0)
    assert parse_think_time("1.5").draw(rng) == 1.5
    u = [parse_think_time("uniform:1,3").draw(rng) for _ in range(2000)]
    assert min(u) >= 1 and max(u) <= 3 and np.mean(u) == pytest.approx(2.0, rel=0.05)
    e = [parse_think_time("exp:0.5").draw(rng) for _ in range(5000)]
    assert np.mean(e) == pytest.approx(0.5, rel=0.06) and np.std(e) / np.mean(e) == pytest.approx(1, rel=0.08)
    for bad in ("-1", "uniform:3,1", "exp:", "gauss:1"):
        with pytest.raises(ValueError):
            parse_think_time(bad)


def test_session_stats_merge_is_exact() -> None:
    from evalscope.engine.records import RequestRecord

    def rec(ttft_ms: float) -> RequestRecord:
        return RequestRecord(
            request_id="x",
            status="ok",
            scheduled_ns=0,
            sent_ns=0,
            first_token_ns=int(ttft_ms * 1e6),
            end_ns=int(ttft_ms * 2e6),
        )

    a, b, both = SessionStats(), SessionStats(), SessionStats()
    for i in range(40):
        for turn in range(3):
            r = rec(10 + i + 5 * turn)
            (a if i % 2 else b).turn(turn, r)
            both.turn(turn, r)
        (a if i % 2 else b).session("completed", 3, 1_000_000 * (i + 1))
        both.session("completed", 3, 1_000_000 * (i + 1))
    merged = SessionStats.from_state(json.loads(json.dumps(a.to_state())))
    merged.merge(SessionStats.from_state(json.loads(json.dumps(b.to_state()))))
    assert merged.summary() == both.summary()
    s = both.summary()
    assert [t["turn"] for t in s["by_turn"]] == ["1", "2", "3"]
    assert s["by_turn"][2]["ttft"]["min"] == pytest.approx(20.0)
    assert s["turns_completed"] == {"mean": 3.0, "histogram": {"3": 40}}
