"""Recorded stream styles of real servers parse to the same tokens and usage."""

from __future__ import annotations

import orjson
import pytest

from evalscope.engine.protocols import get_protocol
from evalscope.engine.protocols.base import EV_CONTENT, EV_DONE, EV_TOKEN, ProtocolError, StreamState
from evalscope.engine.sse import SSEDecoder
from evalscope.errors import UnknownNameError


def sse(*objs: object) -> bytes:
    out = b""
    for o in objs:
        out += b"data: " + (o if isinstance(o, bytes) else orjson.dumps(o)) + b"\n\n"
    return out


def chunk(delta: dict, finish: str | None = None, **extra: object) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}

VLLM = sse(
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hello"}),
    chunk({"content": " world"}),
    chunk({"content": "!"}, "stop", stop_reason=None),
    {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [], "usage": USAGE},
    b"[DONE]",
)
SGLANG = sse(
    chunk({"role": "assistant", "content": ""}),
    chunk({"role": None, "content": "Hello", "reasoning_content": None, "tool_calls": None}),
    chunk({"role": None, "content": " world", "reasoning_content": None, "tool_calls": None}),
    chunk({"role": None, "content": "!", "reasoning_content": None, "tool_calls": None}),
    chunk(
        {"role": None, "content": None, "reasoning_content": None, "tool_calls": None}, "stop", matched_stop=2
    ),
    {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [], "usage": USAGE},
    b"[DONE]",
)
LLAMACPP = (
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hello"}}],"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":" world"}}],"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"!"}}],"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"object":"chat.completion.chunk",'
    b'"usage":{"completion_tokens":3,"prompt_tokens":5,"total_tokens":8},"timings":{"predicted_ms":12.5}}\n\n'
    b"data: [DONE]\n\n"
)
OPENAI = b": OPENAI keep-alive\r\n\r\n" + sse(
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "Hello"}),
    chunk({"content": " world"}),
    chunk({"content": "!"}),
    chunk({}, "stop"),
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {
            **USAGE,
            "completion_tokens_details": {"reasoning_tokens": 0},
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    },
    b"[DONE]",
).replace(b"\n\n", b"\r\n\r\n")
REASONING = sse(
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning_content": "Think"}),
    chunk({"reasoning": " more"}),
    chunk({"content": "Hello"}),
    chunk({"content": " world"}),
    chunk({"content": "!"}, "stop"),
    {
        "choices": [],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 5,
            "total_tokens": 10,
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    },
    b"[DONE]",
)
TWO_PER_CHUNK = sse(
    chunk(
        {"role": "assistant", "content": ""},
        usage={"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5},
    ),
    chunk({"content": "Hello world"}, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
    chunk({"content": "!"}, "stop", usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}),
    {"choices": [], "usage": USAGE},
    b"[DONE]",
)


def run_stream(raw: bytes, step: int = 7) -> tuple[StreamState, int, int, list[int]]:
    proto = get_protocol("openai")
    st = StreamState(keep_text=True)
    dec = SSEDecoder()
    n_tok = n_content = 0
    per_event: list[int] = []
    for i in range(0, len(raw), step):
        for _ev, data in dec.feed(raw[i : i + step]):
            flags = proto.parse_event(data, st)
            if flags & EV_TOKEN:
                n_tok += 1
                per_event.append(st.event_tokens)
            if flags & EV_CONTENT:
                n_content += 1
            if flags & EV_DONE:
                assert st.done
    return st, n_tok, n_content, per_event


@pytest.mark.parametrize(
    "raw", [VLLM, SGLANG, LLAMACPP, OPENAI], ids=["vllm", "sglang", "llamacpp", "openai"]
)
def test_server_styles_agree(raw: bytes) -> None:
    for step in (1, 3, 7, 1000):
        st, n_tok, n_content, _ = run_stream(raw, step)
        assert "".join(st.text_parts) == "Hello world!"
        assert st.usage is not None
        assert (st.usage["prompt_tokens"], st.usage["completion_tokens"]) == (5, 3)
        assert st.finish_reason == "stop" and st.done
        assert n_tok == n_content == 3


def test_reasoning_then_content() -> None:
    st, n_tok, n_content, _ = run_stream(REASONING)
    assert "".join(st.reasoning_parts) == "Think more"
    assert "".join(st.text_parts) == "Hello world!"
    assert n_tok == 5 and n_content == 3
    assert st.usage and st.usage["completion_tokens_details"]["reasoning_tokens"] == 2


def test_two_tokens_per_chunk_with_continuous_usage() -> None:
    st, n_tok, _, per_event = run_stream(TWO_PER_CHUNK)
    assert "".join(st.text_parts) == "Hello world!"
    assert n_tok == 2 and per_event == [2, 1]
    assert st.usage and st.usage["completion_tokens"] == 3


def test_tool_call_deltas_merge() -> None:
    raw = sse(
        chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ],
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({}, "tool_calls"),
        b"[DONE]",
    )
    st, n_tok, n_content, _ = run_stream(raw)
    assert n_tok == 3 and n_content == 0
    assert st.tool_calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert st.finish_reason == "tool_calls"


def test_error_object_mid_stream() -> None:
    raw = sse(chunk({"content": "a"}), {"error": {"message": "overloaded", "code": 503}})
    st, *_ = run_stream(raw)
    assert st.error is not None and st.error.kind == "server_error_event" and st.error.http_status == 503


def test_malformed_event_raises() -> None:
    with pytest.raises(ProtocolError):
        get_protocol("openai").parse_event(b"{not json", StreamState())


def test_completions_and_embeddings_bodies() -> None:
    from evalscope.engine.records import Request

    req = Request(prompt="hi", max_tokens=4, params={"temperature": 0})
    body = get_protocol("openai-completions").build_body(req, "m", True)
    assert body["prompt"] == "hi" and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0
    chat = get_protocol("openai", continuous_usage=True).build_body(req, "m", True)
    assert chat["messages"] == [{"role": "user", "content": "hi"}]
    assert chat["stream_options"]["continuous_usage_stats"] is True
    emb = get_protocol("openai-embeddings").build_body(req, "m", False)
    assert emb == {"model": "m", "input": "hi", "temperature": 0}


def test_completions_stream() -> None:
    proto = get_protocol("openai-completions")
    st = StreamState(keep_text=True)
    raw = sse(
        {"choices": [{"text": "a", "index": 0}]},
        {"choices": [{"text": "b", "finish_reason": "length"}]},
        {"choices": [], "usage": USAGE},
        b"[DONE]",
    )
    for _e, d in SSEDecoder().feed(raw):
        proto.parse_event(d, st)
    assert "".join(st.text_parts) == "ab" and st.finish_reason == "length" and st.usage == USAGE


def test_unknown_protocol_suggests() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: openai"):
        get_protocol("opnai")
