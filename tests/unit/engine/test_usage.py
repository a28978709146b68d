"""Server usage is network input (issue 10 item 2): validated once per request, never trusted blindly.

The property test feeds random usage objects (types, signs, magnitudes, missing keys, nested junk) through the
protocol parser, the client's token finishing and the aggregator, and checks that the summary stays internally
consistent and that nothing raises.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from evalscope.engine.client import Client
from evalscope.engine.protocols.base import EV_TOKEN, StreamState
from evalscope.engine.protocols.openai import OpenAIChat
from evalscope.engine.records import Request, RequestRecord
from evalscope.engine.usage import MAX_TOKENS_PER_REQUEST, check_usage
from evalscope.perf.aggregate import Aggregator
from evalscope.perf.summary import stage_summary

# ---- check_usage: the rules ---------------------------------------------------------------------------


def test_valid_usage_is_used() -> None:
    chk = check_usage({"prompt_tokens": 7, "completion_tokens": 10}, 10, 6, 16)
    assert (chk.prompt_tokens, chk.completion_tokens, chk.rejected) == (7, 10, None)
    assert chk.completion_from_usage


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": "7", "completion_tokens": "10"},  # strings crashed the aggregator
        {"prompt_tokens": 7, "completion_tokens": -10},  # negative throughput
        {"prompt_tokens": 7, "completion_tokens": 10**12},  # 1.5e15 tokens/s
        {"prompt_tokens": 7, "completion_tokens": True},
        {"prompt_tokens": 7, "completion_tokens": 10.5},
        {"prompt_tokens": 7, "completion_tokens": float("nan")},
        {"prompt_tokens": 7, "completion_tokens": float("inf")},
        {"prompt_tokens": 7, "completion_tokens": None},
        {"prompt_tokens": 7, "completion_tokens": {"n": 10}},
        {"prompt_tokens": 7, "completion_tokens": 17},  # > max_tokens 16
        {"prompt_tokens": 7, "completion_tokens": 1},  # 1 token for 10 streamed token events
        {"foo": 1},
        ["junk"],
        "10",
    ],
)
def test_implausible_completion_falls_back_to_counted_events(usage: Any) -> None:
    chk = check_usage(usage, 10, 6, 16)
    assert chk.completion_tokens == 10
    assert not chk.completion_from_usage
    assert chk.rejected


def test_prompt_checks() -> None:
    assert check_usage({"prompt_tokens": "7", "completion_tokens": 3}, 3, 6, None).prompt_tokens == 6
    assert check_usage({"prompt_tokens": 10**9, "completion_tokens": 3}, 3, 6, None).prompt_tokens == 6
    # server-side templates add tokens the client cannot count: a few times more is plausible
    ok = check_usage({"prompt_tokens": 300, "completion_tokens": 3}, 3, 6, None)
    assert ok.prompt_tokens == 300 and ok.rejected is None


def test_embeddings_usage_has_no_completion() -> None:
    chk = check_usage({"prompt_tokens": 5, "total_tokens": 5}, 0, 4, None)
    assert chk.completion_tokens is None and chk.prompt_tokens == 5 and chk.rejected is None


def test_integral_float_and_details() -> None:
    chk = check_usage(
        {
            "prompt_tokens": 7.0,
            "completion_tokens": 12,
            "completion_tokens_details": {"reasoning_tokens": 4},
            "prompt_tokens_details": {"cached_tokens": 99},  # more than the prompt: not believed
        },
        10,
        6,
        None,
    )
    assert chk.prompt_tokens == 7 and chk.completion_tokens == 12 and chk.reasoning_tokens == 4
    assert chk.cached_tokens is None and "cached_tokens" in (chk.rejected or "")


def test_reasoning_on_top_of_max_tokens_is_plausible() -> None:
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 10,
        "completion_tokens_details": {"reasoning_tokens": 4},
    }
    chk = check_usage(usage, 5, 3, 6)
    assert chk.rejected is None and chk.completion_tokens == 10 and chk.reasoning_tokens == 4


def test_params_override_the_limit() -> None:
    # --extra-args max_tokens wins over the dataset's max_tokens (params are merged last into the body)
    from evalscope.engine.usage import limit_of

    assert limit_of(16, {"max_tokens": 64}) == 64
    assert limit_of(16, {"max_completion_tokens": 8}) == 8
    assert limit_of(None, None) is None


# ---- the property: parser -> record -> aggregator -> summary ------------------------------------------

_scalar = hs.one_of(
    hs.none(),
    hs.booleans(),
    hs.integers(min_value=-(10**15), max_value=10**15),
    hs.integers(min_value=-(2**70), max_value=2**70),
    hs.floats(allow_nan=True, allow_infinity=True),
    hs.text(max_size=6),
    hs.sampled_from(["12", "-3", "1e12", "NaN", ""]),
)
_value = hs.recursive(
    _scalar,
    lambda inner: hs.one_of(
        hs.lists(inner, max_size=3), hs.dictionaries(hs.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_usage = hs.one_of(
    _value,
    hs.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": _value,
            "completion_tokens": _value,
            "total_tokens": _value,
            "completion_tokens_details": hs.one_of(
                _value, hs.fixed_dictionaries({"reasoning_tokens": _value})
            ),
            "prompt_tokens_details": hs.one_of(_value, hs.fixed_dictionaries({"cached_tokens": _value})),
        },
    ),
)


def _record(
    usage: Any, n_events: int, continuous: bool, max_tokens: int | None, i: int, whole: bool = False
) -> RequestRecord:
    """One request through the chat parser: content events, the usage chunk, [DONE]; or one whole body."""
    proto = OpenAIChat(continuous_usage=continuous)
    st = StreamState()
    sent = 1_000_000_000 + i * 10_000_000
    rec = RequestRecord(request_id=i, status="error", scheduled_ns=sent, sent_ns=sent)
    t = sent + 5_000_000
    if whole:
        msg = {"role": "assistant", "content": "w " * n_events}
        body = {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}], "usage": usage}
        if proto.parse_response(body, st) & EV_TOKEN:
            rec.first_token_ns = rec.last_token_ns = t
            rec.event_ns.append(t)
        rec.end_ns = t
        rec.ttft_measured = not continuous  # both kinds of whole body: asked for, or instead of a stream
        Client.__new__(Client)._finish_tokens(
            rec, st, Request(i, prompt="p", max_tokens=max_tokens, prompt_tokens=5)
        )
        rec.status = "ok"
        return rec
    for k in range(n_events):
        ev: dict[str, Any] = {"choices": [{"index": 0, "delta": {"content": "w"}, "finish_reason": None}]}
        if continuous:
            ev["usage"] = usage
        flags = proto.parse_event(orjson.dumps(ev), st)
        if flags & EV_TOKEN:
            if not rec.event_ns:
                rec.first_token_ns = t
            rec.event_ns.append(t)
            if continuous:
                rec.event_tokens.append(st.event_tokens)
        t += 1_000_000 * (k + 1)
    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    proto.parse_event(orjson.dumps(final), st)
    proto.parse_event(orjson.dumps({"choices": [], "usage": usage}), st)
    proto.parse_event(b"[DONE]", st)
    rec.end_ns = t
    client = Client.__new__(Client)  # only _finish_tokens is used: no session, no URL
    client._finish_tokens(rec, st, Request(i, prompt="p", max_tokens=max_tokens, prompt_tokens=5))
    rec.status = "ok"
    return rec


def _jsonable(usage: Any) -> bool:
    try:
        orjson.dumps(usage)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hs.lists(
        hs.tuples(
            _usage, hs.integers(0, 40), hs.booleans(), hs.one_of(hs.none(), hs.integers(1, 64)), hs.booleans()
        ),
        min_size=1,
        max_size=12,
    )
)
def test_random_usage_keeps_the_summary_consistent(
    cases: list[tuple[Any, int, bool, int | None, bool]],
) -> None:
    agg = Aggregator(0)
    for i, (usage, n, continuous, max_tokens, whole) in enumerate(cases):
        if not _jsonable(usage):  # orjson cannot send ints beyond 64 bits: the server could not either
            usage = {"completion_tokens": str(usage)[:20]}
        try:
            rec = _record(usage, n, continuous, max_tokens, i, whole)
        except OverflowError:
            # continuous usage beyond the int64 event-token buffer: the client turns any exception into an
            # error record (engine/client.py), so it is not a success to count
            continue
        # every count the record holds is a plausible non-negative int (or None)
        for v in (rec.prompt_tokens, rec.completion_tokens, rec.reasoning_tokens, rec.cached_tokens):
            assert v is None or (type(v) is int and 0 <= v <= MAX_TOKENS_PER_REQUEST)
        if max_tokens is not None and rec.completion_tokens is not None:
            assert rec.completion_tokens - (rec.reasoning_tokens or 0) <= max(max_tokens, rec.n_events)
        agg.add(rec)
    s = stage_summary(agg, stage=0, parallel=1, concurrency_cap=1, rate=None, number=None, client={})
    req, tok, thr = s["requests"], s["tokens"], s["throughput"]
    assert req["succeeded"] == agg.succeeded
    e2e_count = s["e2e_latency"]["count"] if s["e2e_latency"] else 0
    assert req["succeeded"] == e2e_count  # one latency sample per success, however bad its usage
    assert tok["prompt_total"] >= 0 and tok["completion_total"] >= 0
    window = s["duration_s"]
    for key, total in (
        ("output_tokens_per_s", tok["completion_total"]),
        ("total_tokens_per_s", tok["completion_total"] + tok["prompt_total"]),
        ("requests_per_s", req["succeeded"]),
    ):
        v = thr[key]
        if v is None:
            assert window == 0
            continue
        assert math.isfinite(v) and v >= 0
        assert v <= total / window * (1 + 1e-9)
    assert tok["completion_total"] <= MAX_TOKENS_PER_REQUEST * max(1, req["succeeded"])
    td = s["token_disagreement"]
    if td is not None:
        assert 0 <= td["usage_rejected"] <= req["succeeded"]
    assert s["server_quirks"]["usage_rejected"] == (td["usage_rejected"] if td else 0)
    orjson.dumps(s)  # the summary is serialisable


def test_string_usage_through_the_aggregator_counts_events() -> None:
    """The measured failure: usage as strings raised in the aggregator (perf: an unhandled task exception)."""
    agg = Aggregator(0)
    for i in range(4):
        agg.add(_record({"prompt_tokens": "5", "completion_tokens": "8"}, 8, False, 16, i))
    assert agg.succeeded == 4 and agg.completion_tokens == 32 and agg.prompt_tokens == 20
    assert agg.metrics["e2e_latency"].count == 4
    assert agg.token_disagreement() is not None
    assert agg.token_disagreement()["usage_rejected"] == 4  # type: ignore[index]
