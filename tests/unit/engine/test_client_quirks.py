"""Successes that are not (issue 10 item 3), against the simulator's ``reply_quirk`` / ``usage_fault`` knobs.

- a stream that is only ``data: [DONE]`` is ``empty_stream``, not ok with 0 tokens;
- a POST answered 301/302/303 is never re-sent as a body-less GET (``redirect``, the target named, redacted);
  307/308 are followed with the body;
- a whole JSON body when a stream was asked for is ok, but its TTFT is marked not measured;
- valid SSE labelled ``text/plain`` is accepted as a stream.
"""

from __future__ import annotations

import pytest

from evalscope.engine import Client, Request
from evalscope.engine.records import ERROR_KINDS, RequestRecord
from evalscope.perf.aggregate import Aggregator
from evalscope.sim import SimConfig, SimServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("any_transport")]


async def _send(cfg: SimConfig, url_suffix: str = "", **client_kw: object) -> tuple[RequestRecord, dict]:  # type: ignore[type-arg]
    async with SimServer(cfg, port=0) as sim:
        async with Client(sim.url + url_suffix, "sim-model", **client_kw) as c:  # type: ignore[arg-type]
            rec = await c.send(Request(request_id="r1", prompt="hello there", max_tokens=6, prompt_tokens=2))
        return rec, sim.stats()


async def test_done_only_stream_is_empty_stream() -> None:
    rec, _ = await _send(SimConfig(ttft_ms=1, itl_ms=1, reply_quirk="empty_stream"))
    assert rec.status == "error"
    assert rec.error is not None and rec.error.kind == "empty_stream"
    assert "empty_stream" in ERROR_KINDS


async def test_zero_token_stream_with_finish_reason_is_ok() -> None:
    # a model may legitimately stop at once: a finish_reason makes it a (0-token) success, not empty_stream
    async with SimServer(SimConfig(ttft_ms=1, itl_ms=1, policy="scripted", script_default=""), port=0) as sim:
        async with Client(sim.url, "sim-model") as c:
            rec = await c.send(Request(prompt="x", max_tokens=4))
    assert rec.ok, rec.error


@pytest.mark.parametrize("code", [301, 302, 303])
async def test_post_redirect_is_not_followed_as_get(code: int) -> None:
    rec, stats = await _send(
        SimConfig(ttft_ms=1, itl_ms=1, reply_quirk=f"redirect_{code}"), "?api_key=sk-URLKEY-1"
    )  # type: ignore[arg-type]
    assert rec.status == "error" and rec.http_status == code
    assert rec.error is not None and rec.error.kind == "redirect"
    assert "/sim/redirected/v1/chat/completions" in rec.error.message
    assert "sk-URLKEY-1" not in rec.error.message and "api_key=***" in rec.error.message
    assert stats["requests"] == 1  # the GET was never sent


@pytest.mark.parametrize("code", [307, 308])
async def test_307_308_are_followed_with_the_body(code: int) -> None:
    rec, stats = await _send(SimConfig(ttft_ms=1, itl_ms=1, reply_quirk=f"redirect_{code}"))  # type: ignore[arg-type]
    assert rec.ok, rec.error
    assert rec.completion_tokens == 6 and rec.n_events == 6
    assert stats["requests"] == 2  # the redirect, then the POST at the new location


async def test_whole_body_for_a_stream_marks_ttft_not_measured() -> None:
    rec, _ = await _send(SimConfig(ttft_ms=30, itl_ms=5, reply_quirk="json_for_stream"))
    assert rec.ok, rec.error
    assert rec.ttft_measured is False
    assert rec.ttft_ns() is None and rec.ttfo_ns() is None and rec.tpot_ns() is None
    assert rec.e2e_ns() is not None and rec.completion_tokens == 6
    agg = Aggregator(0)
    agg.add(rec)
    assert agg.metrics["ttft"].count == 0 and agg.metrics["itl"].count == 0 and agg.metrics["tpot"].count == 0
    assert agg.metrics["e2e_latency"].count == 1 and agg.completion_tokens == 6
    assert agg.quirks()["not_streamed"] == 1
    back = RequestRecord.from_dict(rec.to_dict())
    assert back.ttft_measured is False


async def test_asked_whole_body_is_unchanged() -> None:
    rec, _ = await _send(SimConfig(ttft_ms=1, itl_ms=1), stream=False)
    assert rec.ok and rec.ttft_measured  # --no-stream keeps its documented behaviour


async def test_sse_labelled_text_plain_is_a_stream() -> None:
    rec, _ = await _send(SimConfig(ttft_ms=1, itl_ms=2, reply_quirk="text_plain"), keep_text=True)
    assert rec.ok, rec.error
    assert rec.sse_content_type is not None and rec.sse_content_type.startswith("text/plain")
    assert rec.n_events == 6 and rec.completion_tokens == 6 and rec.ttft_measured
    assert rec.text and len(rec.text.split()) == 6
    agg = Aggregator(0)
    agg.add(rec)
    assert agg.quirks()["sse_mislabelled"] == 1 and agg.metrics["ttft"].count == 1


@pytest.mark.parametrize("fault", ["string", "text", "negative", "huge", "float", "junk"])
async def test_bad_usage_falls_back_to_counted_tokens(fault: str) -> None:
    for stream in (True, False):
        rec, _ = await _send(SimConfig(ttft_ms=1, itl_ms=1, usage_fault=fault), stream=stream)  # type: ignore[arg-type]
        assert rec.ok, rec.error
        assert rec.usage_rejected
        assert rec.token_source == "events"
        assert rec.completion_tokens == (6 if stream else 1)
        assert rec.prompt_tokens == 2
