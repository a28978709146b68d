"""Units behind the server-side numbers: the Prometheus text parser, the llama.cpp timings parser, the
per-stage sums (mergeable across workers) and the simulator's prefix cache."""

from __future__ import annotations

import pytest

from evalscope.engine.protocols.base import StreamState
from evalscope.engine.protocols.openai import OpenAIChat
from evalscope.engine.records import RequestRecord
from evalscope.perf.aggregate import Aggregator
from evalscope.perf.servermetrics import metrics_url, parse_exposition
from evalscope.perf.servernums import ServerNumbers
from evalscope.sim.serverside import PrefixCache

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 3.0
vllm:num_requests_running{engine="1",model_name="tiny"} 2.0
vllm:num_requests_waiting{engine="0",model_name="tiny"} 7.0
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="tiny"} 0.75
vllm:num_requests_running_total{model_name="tiny"} 99
vllm:prompt_tokens_total{model_name="tiny"} 1234
"""
LLAMACPP = """\
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 8
llamacpp:requests_deferred 24
llamacpp:kv_cache_usage_ratio 0.5 1700000000000
"""
SGLANG = """\
sglang:num_running_reqs{model_name="a \\"quoted\\" {name} x=1"} 4.0
sglang:num_queue_reqs{model_name="m"} NaN
sglang:token_usage{model_name="m"} 0.28
sglang:cache_hit_rate{model_name="m"} 0.9
"""


def test_parse_exposition_vllm_sums_counts_and_averages_usage() -> None:
    v = parse_exposition(VLLM)
    assert v == {
        "vllm:num_requests_running": 5.0,
        "vllm:num_requests_waiting": 7.0,
        "vllm:kv_cache_usage_perc": 0.5,
    }


def test_parse_exposition_llamacpp_and_timestamps() -> None:
    v = parse_exposition(LLAMACPP)
    assert v == {
        "llamacpp:requests_processing": 8.0,
        "llamacpp:requests_deferred": 24.0,
        "llamacpp:kv_cache_usage_ratio": 0.5,
    }


def test_parse_exposition_sglang_escaped_labels_and_nan() -> None:
    v = parse_exposition(SGLANG)
    assert v == {"sglang:num_running_reqs": 4.0, "sglang:token_usage": 0.28}  # NaN skipped, untracked ignored


def test_parse_exposition_garbage_is_ignored() -> None:
    assert (
        parse_exposition('vllm:num_requests_running{a="unterminated 3\nvllm:num_requests_waiting x\n') == {}
    )


def test_metrics_url() -> None:
    assert metrics_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/metrics"
    assert metrics_url("http://h:1/") == "http://h:1/metrics"
    assert metrics_url("http://h:1/custom/metrics") == "http://h:1/custom/metrics"
    with pytest.raises(ValueError):
        metrics_url("127.0.0.1:8000")


def _final(obj: bytes) -> StreamState:
    st = StreamState()
    OpenAIChat().parse_event(obj, st)
    return st


def test_timings_read_from_the_usage_event_only_sane_numbers() -> None:
    st = _final(
        b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3},"timings":{"prompt_n":5,'
        b'"prompt_ms":2.5,"prompt_per_second":2000.0,"predicted_n":3,"predicted_ms":30.0,"draft_n":"x",'
        b'"draft_n_accepted":-1,"predicted_per_token_ms":10.0}}'
    )
    assert st.timings == {"prompt_n": 5, "prompt_ms": 2.5, "predicted_n": 3, "predicted_ms": 30.0}
    # a token event with timings but no usage (llama.cpp's timings_per_token) costs nothing and is not read
    st = _final(b'{"choices":[{"index":0,"delta":{"content":"a"}}],"timings":{"prompt_n":5}}')
    assert st.timings is None
    assert _final(b'{"choices":[],"usage":{"completion_tokens":1},"timings":[1,2]}').timings is None


def _rec(**kw: object) -> RequestRecord:
    base: dict[str, object] = dict(request_id=1, status="ok", scheduled_ns=0, sent_ns=0, end_ns=10**9)
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


def test_server_numbers_summary_merge_and_state() -> None:
    a, b = Aggregator(0), Aggregator(0)
    a.add(_rec(prompt_tokens=100, completion_tokens=10, cached_tokens=64, token_source="usage", n_events=4))
    b.add(
        _rec(
            prompt_tokens=100,
            completion_tokens=9,
            cached_tokens=0,
            reasoning_tokens=5,
            token_source="usage",
            n_events=9,
            timings={
                "prompt_n": 100,
                "prompt_ms": 50.0,
                "predicted_n": 9,
                "predicted_ms": 90.0,
                "draft_n": 8,
                "draft_n_accepted": 6,
            },
        )
    )
    a.merge(Aggregator.from_state(b.to_state()))
    s = a.server.summary()
    assert s is not None
    assert s["prefix_cache"] == {"requests": 2, "cached_tokens": 64, "prompt_tokens": 200, "hit_rate": 0.32}
    assert s["reasoning"]["reasoning_tokens"] == 5 and s["reasoning"]["requests"] == 1
    assert s["timings"]["prompt_tokens_per_s"] == pytest.approx(2000.0)
    assert s["timings"]["predicted_tokens_per_s"] == pytest.approx(100.0)
    assert s["speculative"]["acceptance_rate"] == pytest.approx(0.75)
    # (10-1 + 9-1) tokens over (4-1 + 9-1) events
    assert s["decoded_tokens_per_iter"]["mean"] == pytest.approx(17 / 11)
    assert ServerNumbers().summary() is None


def test_tokens_counted_from_events_give_no_per_iteration_figure() -> None:
    n = ServerNumbers()
    n.add(_rec(completion_tokens=8, n_events=8, token_source="events"))
    assert n.summary() is None


def test_prefix_cache_blocks_and_lru() -> None:
    pc = PrefixCache(block=4, capacity=4)
    a = list(range(10))
    assert pc.lookup_insert(a) == 0
    assert pc.lookup_insert(a) == 8  # two whole blocks; the tail of 2 is never cached
    assert pc.lookup_insert(list(range(8))) == 7  # fully cached prompt: the last token is still computed
    assert pc.lookup_insert([0, 1, 2, 3, 9, 9, 9, 9]) == 4  # first block shared, then a miss
    assert pc.lookup_insert([5] * 40) == 0  # evicts older blocks (capacity 4)
    assert pc.lookup_insert(a) == 0
