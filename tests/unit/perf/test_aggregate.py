"""Aggregation math: HDR percentiles vs numpy, ITL spreading, goodput, error grouping, merging."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from evalscope.engine.records import ErrorInfo, RequestRecord
from evalscope.perf.aggregate import MAX_ERROR_GROUPS, Aggregator, Metric, normalize_error
from evalscope.perf.metrics import icl_raw, itl_spread, scalar_vllm


def per_sample(values_ns: list[int] | list[float]) -> tuple[list[int], list[int], int, float, float, float]:
    """The reference: each sample bucketed alone with ``bucket_us`` (negative as 0), in ``quantise``'s form."""
    from evalscope.perf.histogram import bucket_us

    vals = [max(v, 0) for v in values_ns]
    keys = [bucket_us(v) for v in vals]
    return keys, [1] * len(keys), len(keys), float(sum(vals)), float(min(vals)), float(max(vals))


def ok_record(
    rid: int,
    sent: int,
    ttft_ns: int,
    gaps_ns: list[int],
    tokens: int | None = None,
    event_tokens: list[int] | None = None,
    scheduled: int | None = None,
) -> RequestRecord:
    first = sent + ttft_ns
    ev = [first]
    for g in gaps_ns:
        ev.append(ev[-1] + g)
    return RequestRecord(
        request_id=rid,
        status="ok",
        scheduled_ns=sent if scheduled is None else scheduled,
        sent_ns=sent,
        first_choice_ns=first - 1000,
        first_token_ns=first,
        first_content_ns=first,
        last_token_ns=ev[-1],
        end_ns=ev[-1] + 500_000,
        n_events=len(ev),
        prompt_tokens=10,
        completion_tokens=tokens if tokens is not None else len(ev),
        token_source="usage",
        event_ns=array("q", ev),
        event_tokens=array("l", event_tokens or []),
    )


@pytest.mark.parametrize("dist", ["lognormal", "uniform", "exponential"])
def test_percentiles_match_numpy_within_hdr_precision(dist: str) -> None:
    rng = np.random.default_rng(1)
    if dist == "lognormal":
        values_ms = rng.lognormal(mean=4.0, sigma=1.0, size=20000)
    elif dist == "uniform":
        values_ms = rng.uniform(0.5, 5000, size=20000)
    else:
        values_ms = rng.exponential(30.0, size=20000) + 0.01
    m = Metric()
    for v in values_ms:
        m.record(v * 1e6)
    s = m.stats()
    assert s is not None
    assert s["mean"] == pytest.approx(values_ms.mean(), rel=1e-9)
    assert s["min"] == pytest.approx(values_ms.min(), rel=1e-9)
    assert s["max"] == pytest.approx(values_ms.max(), rel=1e-9)
    for key, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        # the sample of rank ceil(p·n) (numpy's "inverted_cdf", without its float rounding at exact ranks)
        rank = int(np.ceil(round(p * len(values_ms) / 100, 6)))
        expected = np.sort(values_ms)[rank - 1]
        assert expected == pytest.approx(np.percentile(values_ms, p, method="inverted_cdf"), rel=0.02)
        # 3 significant digits: within 0.1 % (+ the 1 µs rounding of the recorded value)
        assert s[key] == pytest.approx(expected, rel=2e-3, abs=2e-3), key


def test_percentiles_of_known_small_set() -> None:
    m = Metric()
    for v in range(1, 101):  # 1..100 ms
        m.record(v * 1_000_000)
    assert m.percentile_ms(50) == pytest.approx(50, rel=1e-3)
    assert m.percentile_ms(99) == pytest.approx(99, rel=1e-3)
    assert m.percentile_ms(100) == pytest.approx(100, rel=1e-3)
    assert m.mean_ms() == pytest.approx(50.5)


def test_itl_spread_over_event_tokens() -> None:
    # events at 0, +10 ms (1 token), +30 ms (carrying 4 tokens)
    rec = ok_record(1, 0, 100_000_000, [10_000_000, 30_000_000], tokens=6, event_tokens=[1, 1, 4])
    got: list[tuple[float, int]] = []
    itl_spread(rec, lambda v, k: got.append((v, k)))
    assert got == [(10_000_000, 1), (7_500_000, 4)]
    raw: list[tuple[float, int]] = []
    icl_raw(rec, lambda v, k: raw.append((v, k)))
    assert raw == [(10_000_000, 1), (30_000_000, 1)]


def test_itl_spread_from_usage_average_when_no_event_tokens() -> None:
    # 3 events, 6 tokens by usage: 2 tokens per event on average
    rec = ok_record(1, 0, 1_000_000, [20_000_000, 20_000_000], tokens=6)
    got: list[tuple[float, int]] = []
    itl_spread(rec, lambda v, k: got.append((v, k)))
    assert got == [(10_000_000, 2), (10_000_000, 2)]


def test_itl_mean_equals_tpot_for_single_token_events() -> None:
    agg = Aggregator(0)
    agg.add(ok_record(1, 0, 200_000_000, [20_000_000] * 99))
    assert agg.metrics["tpot"].mean_ms() == pytest.approx(20.0)
    assert agg.metrics["itl"].mean_ms() == pytest.approx(20.0)
    assert agg.metrics["ttft"].mean_ms() == pytest.approx(200.0)
    assert agg.metrics["itl"].count == 99


def test_vllm_profile_uses_first_choice_and_raw_gaps() -> None:
    rec = ok_record(1, 0, 100_000_000, [10_000_000, 30_000_000], tokens=6, event_tokens=[1, 1, 4])
    s = scalar_vllm(rec)
    assert s.ttft == 100_000_000 - 1000
    agg = Aggregator(0, profile="vllm")
    agg.add(rec)
    assert agg.metrics["itl"].count == 2  # raw per-chunk gaps
    assert agg.metrics["tpot"].mean_ms() == pytest.approx((rec.end_ns - rec.first_choice_ns) / 5 / 1e6)  # type: ignore[operator]


def test_goodput_counts_requests_meeting_every_slo() -> None:
    agg = Aggregator(0, slos_ms={"ttft": 150, "e2e": 1000})
    agg.add(ok_record(1, 0, 100_000_000, [10_000_000] * 5))  # good
    agg.add(ok_record(2, 0, 200_000_000, [10_000_000] * 5))  # ttft too slow
    agg.add(ok_record(3, 0, 100_000_000, [300_000_000] * 5))  # e2e too slow
    err = RequestRecord(4, "error", 0, 0, end_ns=10, error=ErrorInfo("http_status", "boom", 500))
    agg.add(err)
    assert agg.good == 1
    assert agg.failed == 1
    assert agg.succeeded == 3


def test_latency_from_successes_only_and_cancelled_separate() -> None:
    agg = Aggregator(0)
    agg.add(ok_record(1, 0, 100_000_000, [1_000_000]))
    agg.add(RequestRecord(2, "error", 0, 0, end_ns=5_000_000_000, error=ErrorInfo("read_timeout", "x")))
    agg.add(RequestRecord(3, "cancelled", 0, 0, end_ns=9, error=ErrorInfo("cancelled", "x")))
    assert (agg.sent, agg.succeeded, agg.failed, agg.cancelled) == (3, 1, 1, 1)
    assert agg.metrics["e2e_latency"].count == 1
    assert agg.metrics["ttft"].count == 1


def test_queue_time_and_latency_from_schedule() -> None:
    agg = Aggregator(0)
    agg.add(ok_record(1, 50_000_000, 10_000_000, [1_000_000], scheduled=0))
    assert agg.metrics["queue_time"].mean_ms() == pytest.approx(50.0)
    assert agg.metrics["latency_from_schedule"].mean_ms() == pytest.approx(50 + 10 + 1 + 0.5)


def test_error_groups_normalised_and_bounded() -> None:
    assert normalize_error(
        "request 8f14e45f-ceea-467a-9a1b-23c8e4c0a1b2 failed at 10.0.0.1:8000 after 31 ms"
    ) == (normalize_error("request 0b14e45f-aaaa-467a-9a1b-23c8e4c0a1b3 failed at 10.0.0.2:9000 after 7 ms"))
    agg = Aggregator(0)
    for i in range(3):
        agg.add(RequestRecord(i, "error", 0, 0, end_ns=1, error=ErrorInfo("http_status", f"id {i} bad", 500)))
    assert len(agg.errors) == 1 and next(iter(agg.errors.values()))["count"] == 3
    for i in range(MAX_ERROR_GROUPS + 10):
        agg.add(RequestRecord(i, "error", 0, 0, end_ns=1, error=ErrorInfo("client", "x" * (i + 1))))
    assert len(agg.errors) == MAX_ERROR_GROUPS
    table = agg.error_table()
    assert table[-1]["kind"] == "other" and table[-1]["count"] == 11


def test_merge_equals_single_aggregate_and_state_roundtrip() -> None:
    rng = np.random.default_rng(3)
    recs = [
        ok_record(i, int(i * 1e7), int(rng.integers(1e6, 5e8)), [int(g) for g in rng.integers(1e5, 5e7, 20)])
        for i in range(400)
    ]
    whole = Aggregator(0)
    a, b = Aggregator(0), Aggregator(0)
    for i, r in enumerate(recs):
        whole.add(r)
        (a if i % 2 else b).add(r)
    b2 = Aggregator.from_state(b.to_state())
    a.merge(b2)
    for name, m in whole.metrics.items():
        assert a.metrics[name].count == m.count
        assert a.metrics[name].stats() == pytest.approx(m.stats()), name
    assert a.timeline == whole.timeline
    assert (a.succeeded, a.completion_tokens) == (whole.succeeded, whole.completion_tokens)


@pytest.mark.parametrize("profile", ["default", "vllm"])
@pytest.mark.parametrize("events", [2, 3, 8, 15, 16, 60])
def test_gap_recording_matches_the_per_gap_definition(profile: str, events: int) -> None:
    """The aggregator's short-stream (raw gaps buffered, ``Metric.record_all``) and long-stream (numpy) paths give what each gap
    metric's ``per_event`` definition gives, sample by sample, into a plain Metric."""
    from evalscope.perf.metrics import plan

    rng = np.random.default_rng(events)

    def rec(i: int, toks: list[int] | None = None, ct: int | None = None) -> RequestRecord:
        gaps = [int(g) for g in rng.integers(-2_000, 80_000_000, events - 1)]  # (a negative gap: clock noise)
        return ok_record(i, 0, 1_000_000, gaps, tokens=ct, event_tokens=toks)

    recs = (
        [rec(i) for i in range(30)]
        + [rec(100 + i, toks=[int(x) for x in rng.integers(1, 5, events)]) for i in range(30)]
        + [rec(200 + i, ct=3 * events) for i in range(30)]
    )
    agg = Aggregator(0, profile)
    for r in recs:
        agg.add(r)
    for g in plan(profile)[1]:
        ref = Metric()
        for r in recs:
            g.per_event(r, ref.record)
        assert agg.metrics[g.name].stats() == pytest.approx(ref.stats(), rel=1e-9), g.name


def test_per_sample_bucketing_is_metric_record() -> None:
    vals = [-5, 0, 1, 499, 500, 1_499, 2_047_400, 2_048_600, 123_456_789, 9.9e15, 77_777.7]
    a, b = Metric(), Metric()
    for v in vals:
        a.record(v)
    b.add_quantised(*per_sample(vals))
    assert a.stats() == b.stats()
    assert a.hist.encode() == b.hist.encode()


def test_buffered_record_is_seen_by_every_read() -> None:
    """``Metric.record`` buffers single samples; count, sum, min, max, percentiles and the state see them at
    once, before and after the buffer folds itself in, and equal the per-sample bucketing."""
    from evalscope.perf.histogram import _BUF_MAX

    vals = [float((i * 7919) % 100_003) * 1e3 for i in range(_BUF_MAX + 37)]
    m = Metric()
    for i, v in enumerate(vals[:5]):
        m.record(v)
        assert m.count == i + 1 and m.max_ns == max(vals[: i + 1])
    for v in vals[5:]:
        m.record(v)
    m.record(-3.0)
    ref = Metric()
    ref.add_quantised(*per_sample([*vals, -3.0]))
    assert (m.count, m.sum_ns, m.min_ns, m.max_ns) == (ref.count, ref.sum_ns, ref.min_ns, ref.max_ns)
    assert m.stats() == ref.stats()
    assert m.to_state() == ref.to_state()
    assert Metric.from_state(m.to_state()).stats() == ref.stats()
    many = Metric()  # whole lists at a time (a short stream's gaps), across the buffer's fold
    for k in range(0, len(vals), 7):
        many.record_all(vals[k : k + 7])
    many.record_all([-3.0])
    assert many.to_state() == ref.to_state()


def test_vectorised_percentile_matches_hdrh() -> None:
    """``value_at_percentile`` (numpy scan, used by the live progress) gives hdrh's own answer."""
    import random

    from evalscope.perf.histogram import Metric, value_at_percentile

    rng = random.Random(7)
    for n, scale in ((1, 1e3), (5, 1e6), (200, 2e8), (3000, 1e10)):
        m = Metric()
        for _ in range(n):
            m.record(rng.expovariate(1 / scale))
        h = m.hist
        for p in (0.0, 0.1, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0):
            assert value_at_percentile(h, p) == h.get_value_at_percentile(p), (n, scale, p)


def test_metric_flush_equals_hdrh_record_value() -> None:
    """The numpy flush of many distinct values leaves the HDR histogram exactly as hdrh's own record_value."""
    from evalscope.perf.histogram import new_histogram

    rng = np.random.default_rng(3)
    vals_ns = np.concatenate(
        [rng.exponential(5e6, 3000), rng.uniform(0, 3e3, 500), [0, 1e15, 2.048e6, 4.1e9]]
    )
    from evalscope.perf.histogram import quantise

    m = Metric()
    for v in vals_ns:
        m.record(float(v))  # buffered single samples, folded into the HDR counts by numpy
    many = Metric()
    for v in vals_ns:
        many.record(float(v), 2)  # the pending dict, flushed by numpy
    ref = new_histogram()
    keys, counts, *_ = quantise(vals_ns)
    for k, c in zip(keys, counts, strict=True):
        ref.record_value(k, c)
    h = m.hist
    assert len(vals_ns) > 16 and not m._pending
    h2 = many.hist
    assert list(h2.counts) == [2 * c for c in ref.counts] and h2.total_count == 2 * ref.total_count
    assert (h.total_count, h.min_value, h.max_value) == (ref.total_count, ref.min_value, ref.max_value)
    assert list(h.counts) == list(ref.counts)
    assert h.encode() == ref.encode()


@pytest.mark.parametrize("events", [3, 8, 40])
def test_itl_slo_uses_each_requests_own_gaps_across_buffer_folds(events: int) -> None:
    """Goodput on an ITL SLO judges each request by the mean of its own ITL samples, also when the metric's
    sample buffer folds into the histogram in the middle of the run (short and long streams alike)."""
    agg = Aggregator(0, slos_ms={"itl": 50})
    good = 0
    n = 3000  # x (events - 1) gaps: the 2,048-sample buffer folds several times
    for i in range(n):
        gap_ms = 10 if i % 3 else 90  # one request in three misses the 50 ms ITL SLO
        gaps = [gap_ms * 1_000_000 + (k % 5) * 1000 for k in range(events - 1)]
        good += gap_ms < 50
        agg.add(ok_record(i, i * 1_000_000, 5_000_000, gaps))
    assert agg.good == good == n - (n + 2) // 3
    assert agg.metrics["itl"].count == n * (events - 1)


def _random_records(rng: np.random.Generator, n: int) -> list[RequestRecord]:
    """Successes of every shape the columns must handle (missing stamps, whole bodies, token-weighted streams,
    long and one-event streams), with errors and cancellations among them."""
    out: list[RequestRecord] = []
    for i in range(n):
        sent = 1_000_000_000 + i * 37_000
        kind = rng.integers(0, 20)
        if kind == 0:
            out.append(
                RequestRecord(
                    i, "error", sent, sent, end_ns=sent + 5_000, error=ErrorInfo("http_status", "x")
                )
            )
            continue
        if kind == 1:
            out.append(RequestRecord(i, "cancelled", sent, sent))
            continue
        n_ev = int(rng.choice([0, 1, 2, 8, 8, 8, 15, 16, 40]))
        ev = array("q")
        t = sent + int(rng.integers(1_000, 3_000_000_000))
        for _ in range(n_ev):
            ev.append(t)
            t += int(rng.integers(0, 80_000_000))
        toks = array("l", rng.integers(0, 4, n_ev).tolist()) if kind == 2 else array("l")
        ct_pick = rng.integers(0, 5)
        tokens = None if ct_pick == 0 else (n_ev if ct_pick < 3 else int(rng.integers(0, 3 * n_ev + 2)))
        first = ev[0] if n_ev else None
        out.append(
            RequestRecord(
                i,
                "ok",
                sent - int(rng.integers(0, 2_000_000)),
                sent,
                first_choice_ns=None if kind == 3 else (first - 1_000 if first is not None else sent + 500),
                first_token_ns=first,
                first_content_ns=None if kind == 4 else first,
                last_token_ns=ev[-1] if n_ev else None,
                end_ns=None if kind == 5 else t + 1_000,
                completion_tokens=tokens,
                event_ns=ev,
                event_tokens=toks,
                ttft_measured=kind != 6,
                token_source="usage",
            )
        )
    return out


@pytest.mark.parametrize("profile", ["default", "vllm"])
def test_columns_fold_the_same_distributions_as_per_record_values(profile: str) -> None:
    """Successes held in columns and folded by numpy give exactly the histograms, counts, minima and maxima of
    the per-record definitions (sums to float rounding), across several folds and with reads between them."""
    recs = _random_records(np.random.default_rng(7), 5000)
    cols, per = Aggregator(0, profile), Aggregator(0, profile)
    per._columnar = False
    assert cols._columnar
    for k, r in enumerate(recs):
        cols.add(r)
        per.add(r)
        if k % 1500 == 0:
            cols.metrics["ttft"].percentile_ms(50)  # a full read folds what is held so far
        elif k % 700 == 0:  # a live read folds one metric's share; the next fold must not count it twice
            assert cols.percentile_ms("ttft", 50) == per.percentile_ms("ttft", 50)
            assert cols.percentile_ms("e2e_latency", 99) == per.percentile_ms("e2e_latency", 99)
        elif k % 900 == 0:
            assert cols.percentile_ms("itl", 90) == per.percentile_ms("itl", 90)  # a gap metric: a full fold
    assert not per._rows
    for name in per.metrics:
        a, b = cols.metrics[name], per.metrics[name]
        assert a.count == b.count, name
        if not b.count:
            continue
        assert (a.min_ns, a.max_ns) == (b.min_ns, b.max_ns), name
        assert a.sum_ns == pytest.approx(b.sum_ns, rel=1e-12), name
        assert list(a.hist.counts) == list(b.hist.counts), name
    assert cols.metrics["ttft"].count > 3000  # the records did reach the columns
    assert cols.to_state()["counters"] == per.to_state()["counters"]


def test_columns_are_folded_before_any_read_or_state() -> None:
    recs = _random_records(np.random.default_rng(3), 300)
    agg = Aggregator(0)
    for r in recs:
        agg.add(r)
    assert agg._rows  # held, under the fold size
    state = agg.to_state()
    assert not agg._rows
    ref = Aggregator(0)
    ref._columnar = False
    for r in recs:
        ref.add(r)
    assert state["metrics"]["e2e_latency"]["count"] == ref.metrics["e2e_latency"].count
    back = Aggregator.from_state(state)
    merged = Aggregator(0)
    for r in recs[:100]:
        merged.add(r)
    other = Aggregator(0)
    for r in recs[100:]:
        other.add(r)
    merged.merge(other)
    assert merged.metrics["ttft"].count == back.metrics["ttft"].count == ref.metrics["ttft"].count


def test_goodput_and_plugin_metrics_keep_the_per_record_path() -> None:
    """A per-request verdict (goodput) and a metric without a vectorised form are computed per record."""
    from evalscope.perf.metrics import LatencyMetric

    assert not Aggregator(0, "default", {"ttft": 100.0})._columnar

    class Plain(LatencyMetric):
        name = "ttft"

        def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
            return 1.0

    agg = Aggregator(0)
    scalar, gaps = agg._plan
    agg._plan = ([*scalar, Plain()], gaps)
    agg._bind()
    assert not agg._columnar


def test_a_record_with_non_integer_times_is_computed_per_record_and_the_columns_stay_aligned() -> None:
    """A record read back from an edited file may carry floats (or numbers too large for int64): it is computed
    per record, as before, and the rows held before and after it fold as if it had not been there."""
    recs = _random_records(np.random.default_rng(11), 400)
    odd = ok_record(10_000, 5_000_000_000, 2_000_000, [1_000_000] * 5, tokens=6)
    odd.first_token_ns = float(odd.first_token_ns)  # type: ignore[assignment]
    big = ok_record(10_001, 5_000_000_000, 2_000_000, [1_000_000] * 3)
    # one past int64: the row's append fails after its first four fields went in
    big.first_choice_ns = 1 << 63
    mixed = [*recs[:200], odd, big, *recs[200:]]
    cols, per = Aggregator(0), Aggregator(0)
    per._columnar = False
    for r in mixed:
        cols.add(r)
        per.add(r)
    for name in per.metrics:
        a, b = cols.metrics[name], per.metrics[name]
        assert (a.count, a.min_ns, a.max_ns) == (b.count, b.min_ns, b.max_ns), name
        assert list(a.hist.counts) == list(b.hist.counts), name


def test_a_forged_end_time_cannot_grow_the_timeline_without_bound() -> None:
    """A record read back from an edited file with an end 10**18 ns after the stage start is counted in the last
    second of the 7-day timeline instead of asking for a billion per-second rows."""
    from evalscope.perf.aggregate import MAX_TIMELINE_S

    agg = Aggregator(0)
    agg.add(ok_record(0, 1_000, 2_000_000, [1_000_000] * 3, tokens=4))
    forged = ok_record(1, 2_000, 2_000_000, [1_000_000] * 3, tokens=4)
    forged.end_ns = 10**18
    agg.add(forged)
    assert len(agg.timeline) == MAX_TIMELINE_S
    assert agg.timeline[0][0] == 1 and agg.timeline[-1][0] == 1


def test_a_live_read_folds_only_the_metric_read() -> None:
    recs = _random_records(np.random.default_rng(5), 300)
    agg, ref = Aggregator(0), Aggregator(0)
    ref._columnar = False
    for r in recs[:150]:
        agg.add(r)
        ref.add(r)
    assert agg.percentile_ms("ttft", 50) == ref.metrics["ttft"].percentile_ms(50)
    assert agg._rows and agg._metrics["ttft"].count == ref.metrics["ttft"].count
    # E2E of the streamed successes is still held (whole bodies went per record)
    assert agg._metrics["e2e_latency"].count < ref.metrics["e2e_latency"].count
    for r in recs[150:]:
        agg.add(r)
        ref.add(r)
    assert agg.percentile_ms("ttft", 90) == ref.metrics["ttft"].percentile_ms(90)
    for name in ref.metrics:
        assert list(agg.metrics[name].hist.counts) == list(ref.metrics[name].hist.counts), name
        assert agg.metrics[name].count == ref.metrics[name].count, name


def test_array_quantisation_matches_one_by_one_at_the_rounding_boundaries() -> None:
    """The folds' vectorised bucketing (integer division for int64, a rounded division stepped to the exact floor
    for float64) gives ``bucket_us``'s key for every sample, at and one ulp around each x.5 µs boundary, above the
    first HDR bucket and past the clamp; and an int64 near 2**63 does not overflow."""
    from evalscope.perf.histogram import _clamped, _quantised_us, bucket_us

    rng = np.random.default_rng(4)
    k = rng.integers(0, 10**9, 4000).astype(np.float64) * 1000.0
    samples = [np.concatenate([k - 500.0, np.nextafter(k - 500.0, -np.inf), np.nextafter(k - 500.0, np.inf)])]
    samples.append(rng.random(4000) * 1e13)
    ints = rng.integers(0, 10**12, 4000) * 1000
    samples += [
        np.concatenate([ints - 501, ints - 500, ints - 499]),
        np.array([2**63 - 1, 0, 7_000], np.int64),
    ]
    for v in samples:
        c, lo, hi = _clamped(v)
        got = _quantised_us(c, lo, hi).tolist()
        assert got == [bucket_us(max(float(x), 0.0)) for x in v.tolist()], v.dtype
