"""OpenAI-compatible dialects: chat completions, completions, embeddings.

The chat parser accepts what real servers send: vLLM (usage in a last chunk with empty ``choices``,
continuous usage stats), SGLang, llama.cpp server (``timings``, usage in the final chunk), the OpenAI API,
reasoning models (``reasoning_content`` or ``reasoning`` deltas before content), tool-call deltas, several
tokens per chunk, and an ``error`` object sent mid-stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from evalscope.engine.protocols.base import (
    EV_CHOICE,
    EV_CONTENT,
    EV_DONE,
    EV_NONE,
    EV_TOKEN,
    Protocol,
    ProtocolError,
    StreamState,
)
from evalscope.engine.records import ErrorInfo, Request


def _error_event(obj: dict[str, Any], st: StreamState) -> None:
    err = obj["error"]
    if isinstance(err, dict):
        msg = str(err.get("message") or err)
        code = err.get("code")
    else:
        msg, code = str(err), None
    status = code if isinstance(code, int) else None
    st.error = ErrorInfo(kind="server_error_event", message=msg[:1024], http_status=status)


def _take_usage(obj: dict[str, Any], st: StreamState) -> None:
    usage = obj.get("usage")
    if usage and not isinstance(usage, dict):
        st.usage = usage  # not an object: kept so that check_usage rejects it and counts the disagreement
        return
    if isinstance(usage, dict):
        ct = usage.get("completion_tokens")
        if isinstance(ct, int):
            st.event_tokens = ct - st.usage_completion
            st.usage_completion = ct
        st.usage = usage
        if "timings" in obj:
            _take_timings(obj["timings"], st)


#: llama.cpp ``timings`` fields kept (rates are derived from the counts and times, not stored).
TIMINGS_FIELDS: tuple[str, ...] = (
    "prompt_n",
    "prompt_ms",
    "predicted_n",
    "predicted_ms",
    "draft_n",
    "draft_n_accepted",
)


def _take_timings(timings: Any, st: StreamState) -> None:
    """Keep llama.cpp's server-side ``timings`` (read only on the event carrying the usage, or the whole
    response): finite, non-negative numbers only; anything else in the object is ignored."""
    if not isinstance(timings, dict):
        return
    out: dict[str, float] = {}
    for key in TIMINGS_FIELDS:
        v = timings.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1e15:
            out[key] = v
    # llama.cpp sends prompt_n = -1 style sentinels when a phase did not run; those were dropped above
    st.timings = out or None


def _stream_body(body: dict[str, Any], stream: bool, continuous: bool) -> None:
    if stream:
        body["stream"] = True
        opts: dict[str, Any] = {"include_usage": True}
        if continuous:
            # vLLM extension: usage in every chunk, so tokens per event are known exactly.
            opts["continuous_usage_stats"] = True
        body["stream_options"] = opts


def _finish_body(body: dict[str, Any], request: Request, stream: bool, continuous: bool) -> dict[str, Any]:
    """Token limits, streaming options, then the user's params (last, so they can override anything)."""
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.min_tokens is not None:
        body["min_tokens"] = request.min_tokens
    _stream_body(body, stream, continuous)
    if request.params:
        body.update(request.params)
    return body


def _event_choices(data: bytes, st: StreamState) -> list[dict[str, Any]] | int:
    """What every OpenAI stream event shares: ``[DONE]``, an error object, usage; then its non-empty
    ``choices``, or the ``EV_*`` flags to return when there are none."""
    if data == b"[DONE]":
        st.done = True
        return EV_DONE
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"invalid JSON in stream event: {data[:200]!r}") from exc
    if type(obj) is not dict:
        raise ProtocolError(f"stream event is not a JSON object: {data[:200]!r}")
    if obj.get("error"):
        _error_event(obj, st)
        return EV_NONE
    st.event_tokens = 0
    if obj.get("usage"):
        _take_usage(obj, st)
    choices = obj.get("choices")
    if not choices:
        return EV_NONE
    return choices  # type: ignore[no-any-return]


class OpenAIChat(Protocol):
    """``/v1/chat/completions``."""

    name = "openai"
    default_path = "/v1/chat/completions"
    text_key = b'"content":'

    def build_body(self, request: Request, model: str, stream: bool) -> dict[str, Any]:
        messages = request.messages
        if messages is None:
            messages = [{"role": "user", "content": request.prompt or ""}]
        return _finish_body({"model": model, "messages": messages}, request, stream, self.continuous_usage)

    def parse_event(self, data: bytes, st: StreamState) -> int:
        choices = _event_choices(data, st)
        if isinstance(choices, int):
            return choices
        flags = EV_CHOICE
        for ch in choices:
            delta = ch.get("delta")
            if delta is None:
                # Some servers (llama.cpp in completion mode) send "text" or "message" in chat chunks.
                delta = ch.get("message") or {}
            content = delta.get("content")
            if content:
                flags |= EV_TOKEN | EV_CONTENT
                if st.keep_text:
                    st.text_parts.append(content)
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                flags |= EV_TOKEN
                if st.keep_text:
                    st.reasoning_parts.append(reasoning)
            tcs = delta.get("tool_calls")
            if tcs:
                flags |= EV_TOKEN
                if st.keep_text:
                    _merge_tool_calls(st, tcs)
            fr = ch.get("finish_reason")
            if fr:
                st.finish_reason = fr
        return flags

    def parse_response(self, obj: dict[str, Any], st: StreamState) -> int:
        if obj.get("error"):
            _error_event(obj, st)
            return EV_NONE
        _take_usage(obj, st)
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ProtocolError("response has no choices")
        flags = EV_CHOICE
        ch = choices[0]
        msg = ch.get("message") or {}
        content = msg.get("content")
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        if content:
            flags |= EV_TOKEN | EV_CONTENT
        if reasoning or msg.get("tool_calls"):
            flags |= EV_TOKEN
        if st.keep_text:
            if content:
                st.text_parts.append(content)
            if reasoning:
                st.reasoning_parts.append(reasoning)
            if msg.get("tool_calls"):
                for i, tc in enumerate(msg["tool_calls"]):
                    st.tool_calls[i] = tc
        st.finish_reason = ch.get("finish_reason")
        st.done = True
        return flags


def _merge_tool_calls(st: StreamState, tcs: list[dict[str, Any]]) -> None:
    """Accumulate streamed tool-call deltas (name once, arguments in pieces) by index."""
    for tc in tcs:
        idx = tc.get("index", 0)
        cur = st.tool_calls.get(idx)
        if cur is None:
            cur = {
                "id": tc.get("id"),
                "type": tc.get("type", "function"),
                "function": {"name": "", "arguments": ""},
            }
            st.tool_calls[idx] = cur
        if tc.get("id"):
            cur["id"] = tc["id"]
        fn = tc.get("function") or {}
        if fn.get("name"):
            cur["function"]["name"] += fn["name"]
        if fn.get("arguments"):
            cur["function"]["arguments"] += fn["arguments"]


class OpenAICompletions(Protocol):
    """``/v1/completions`` (text in ``choices[].text``)."""

    name = "openai-completions"
    default_path = "/v1/completions"
    text_key = b'"text":'

    def build_body(self, request: Request, model: str, stream: bool) -> dict[str, Any]:
        prompt = request.prompt
        if prompt is None and request.messages:
            prompt = "\n".join(str(m.get("content", "")) for m in request.messages)
        return _finish_body({"model": model, "prompt": prompt or ""}, request, stream, self.continuous_usage)

    def parse_event(self, data: bytes, st: StreamState) -> int:
        choices = _event_choices(data, st)
        if isinstance(choices, int):
            return choices
        flags = EV_CHOICE
        for ch in choices:
            text = ch.get("text")
            if text:
                flags |= EV_TOKEN | EV_CONTENT
                if st.keep_text:
                    st.text_parts.append(text)
            fr = ch.get("finish_reason")
            if fr:
                st.finish_reason = fr
        return flags

    def parse_response(self, obj: dict[str, Any], st: StreamState) -> int:
        if obj.get("error"):
            _error_event(obj, st)
            return EV_NONE
        _take_usage(obj, st)
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ProtocolError("response has no choices")
        text = choices[0].get("text")
        if st.keep_text and text:
            st.text_parts.append(text)
        st.finish_reason = choices[0].get("finish_reason")
        st.done = True
        return EV_CHOICE | (EV_TOKEN | EV_CONTENT if text else 0)


class OpenAIEmbeddings(Protocol):
    """``/v1/embeddings``: never streamed; the response's ``usage.prompt_tokens`` is what is counted."""

    name = "openai-embeddings"
    default_path = "/v1/embeddings"
    supports_stream = False

    def build_body(self, request: Request, model: str, stream: bool) -> dict[str, Any]:
        text: Any = request.prompt
        if text is None and request.messages:
            text = [str(m.get("content", "")) for m in request.messages]
        body: dict[str, Any] = {"model": model, "input": text or ""}
        if request.params:
            body.update(request.params)
        return body

    def parse_event(self, data: bytes, st: StreamState) -> int:
        raise ProtocolError("embeddings responses are not streamed")

    def parse_response(self, obj: dict[str, Any], st: StreamState) -> int:
        if obj.get("error"):
            _error_event(obj, st)
            return EV_NONE
        if not isinstance(obj.get("data"), list):
            raise ProtocolError("embeddings response has no data list")
        _take_usage(obj, st)
        st.done = True
        st.finish_reason = "stop"
        return EV_CHOICE
