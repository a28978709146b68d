"""The built-in transport's learned frames (``learn_frame``): reading a plain text event without a JSON parse
must give exactly what the general path (SSE decoder + ``parse_event``) gives, for any stream a server may send.

The property test drives one ``h1`` connection with a fake socket, one read per SSE event (as a server writing
each event on its own), and compares the record and the parser state with the reference: every event decoded
and parsed the general way. Hypothesis picks the events: texts with quotes, backslashes, control characters,
non-ASCII and invalid UTF-8; role, finish, usage and error events; frames whose id or extra fields change
mid-stream; keys placed to mislead a byte search.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalscope.engine import h1
from evalscope.engine.protocols import get_protocol
from evalscope.engine.protocols.base import EV_PLAIN, EV_TOKEN, ProtocolError, StreamState, learn_frame
from evalscope.engine.records import RequestRecord
from evalscope.engine.sse import SSEDecoder

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def run_transport(
    proto_name: str, frames: list[bytes], keep_text: bool
) -> tuple[RequestRecord, StreamState, bool]:
    """Feed ``frames`` (one read each) to a built-in connection; (record, state, failed)."""
    proto = get_protocol(proto_name)

    class _Client:
        protocol = proto
        url = "http://127.0.0.1:9/v1/x"

    reads = [HEAD, *(_chunk(f) for f in frames), b"0\r\n\r\n"]

    async def go() -> tuple[RequestRecord, StreamState, bool]:
        loop = asyncio.get_running_loop()
        pool = h1.H1Pool(_Client(), _Client.url, None, None)  # type: ignore[arg-type]
        conn = h1._Conn(pool)
        conn.connection_made(_Transport())  # type: ignore[arg-type]
        rec = RequestRecord(request_id=1, status="error", scheduled_ns=0, sent_ns=0)
        sst = StreamState(keep_text)
        done: asyncio.Future[None] = loop.create_future()
        ex = h1._Exchange(rec, sst, proto.parse_event, True, True, done, proto.text_key)
        conn.start(ex, b"", 0.0)
        clock = iter(range(1000, 10**9))
        real = h1._clock
        h1._clock = lambda: next(clock)  # read i (the head is read 0) is stamped 1000 + i
        try:
            for r in reads:
                if ex.finished:
                    break
                conn.data_received(r)
        finally:
            h1._clock = real
        return rec, sst, ex.error is not None

    return asyncio.run(go())


def run_reference(
    proto_name: str, frames: list[bytes], keep_text: bool
) -> tuple[list[int], StreamState, bool]:
    """Every event decoded and parsed the general way: (stamps of token events, state, failed)."""
    proto = get_protocol(proto_name)
    sst = StreamState(keep_text)
    dec = SSEDecoder()
    stamps: list[int] = []
    # the last "read" is the end of the body (the chunked terminator): an event left without its blank line
    # is dispatched then, as the transport does
    for i, f in enumerate([*frames, None]):
        for _name, data in dec.feed_lines(f) if f is not None else dec.close():
            try:
                flags = proto.parse_event(data, sst)
            except ProtocolError:
                return stamps, sst, True
            if flags & EV_TOKEN:
                stamps.append(1001 + i)  # read 0, the head, was stamped 1000
            if sst.done or sst.error is not None:
                return stamps, sst, False
    return stamps, sst, False


# ---- the events ----------------------------------------------------------------------------------------

TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["a", " word", "\u4e16\u754c", 'say "hi"', "back\\slash", "tab\there", "\n", ""]),
)
RAW_TEXT = st.sampled_from([b"ok\xff", b"\xc3", b"a\x01b", b"\xe4\xb8\x96"])  # invalid UTF-8, control, valid


@st.composite
def chat_frame(draw: Any, ids: list[str]) -> bytes:
    kind = draw(
        st.sampled_from(
            ["text"] * 8 + ["raw", "role", "finish", "usage", "reasoning", "extra", "newid", "trap"]
        )
    )
    delta: dict[str, Any] = {"content": draw(TEXT)}
    obj: dict[str, Any] = {"id": ids[-1], "object": "chat.completion.chunk", "model": "m"}
    choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
    if kind == "role":
        delta["role"] = "assistant"
    elif kind == "finish":
        choice["finish_reason"] = "stop"
    elif kind == "usage":
        obj["usage"] = {"completion_tokens": draw(st.integers(0, 50)), "prompt_tokens": 3}
    elif kind == "reasoning":
        delta["reasoning_content"] = draw(TEXT)
    elif kind == "extra":
        obj["obfuscation"] = "x" * draw(st.integers(0, 5))
    elif kind == "newid":
        ids.append(ids[-1] + "z")
        obj["id"] = ids[-1]
    elif kind == "trap":
        # the key's bytes inside another key: a byte search must not take it for the text
        obj['x"content":'] = draw(TEXT)
    obj["choices"] = [choice]
    payload = orjson.dumps(obj)
    if kind == "raw":
        raw = draw(RAW_TEXT)
        enc = orjson.dumps(delta["content"])
        payload = payload.replace(b'"content":' + enc, b'"content":"' + raw + b'"', 1)
    sep = draw(st.sampled_from([b"data: ", b"data:"]))
    return sep + payload + b"\n\n"


@st.composite
def chat_stream(draw: Any) -> list[bytes]:
    ids = ["chatcmpl-1"]
    frames = draw(st.lists(chat_frame(ids), min_size=1, max_size=24))
    tail = [b'data: {"choices":[],"usage":{"completion_tokens":3}}\n\n', b"data: [DONE]\n\n"]
    return frames + tail[: draw(st.integers(0, 2))]


def _same(proto: str, frames: list[bytes], keep_text: bool) -> None:
    rec, sst, failed = run_transport(proto, frames, keep_text)
    stamps, ref, ref_failed = run_reference(proto, frames, keep_text)
    assert failed == ref_failed
    assert list(rec.event_ns) == stamps
    assert sst.text_parts == ref.text_parts
    assert sst.reasoning_parts == ref.reasoning_parts
    assert (sst.finish_reason, sst.usage, sst.done) == (ref.finish_reason, ref.usage, ref.done)
    if not failed:
        assert rec.first_token_ns == (stamps[0] if stamps else None)


@settings(max_examples=400, deadline=None)
@given(chat_stream(), st.booleans())
def test_chat_stream_same_as_the_general_path(frames: list[bytes], keep_text: bool) -> None:
    _same("openai", frames, keep_text)


@st.composite
def regrouped(draw: Any) -> list[bytes]:
    """A chat stream whose reads do not follow its events: an event split over two reads, two in one, or one
    whose blank line never comes (the next event's data line then belongs to it)."""
    frames = draw(chat_stream())
    out: list[bytes] = []
    i = 0
    while i < len(frames):
        how = draw(st.sampled_from(["whole", "whole", "split", "merge", "no-blank-line"]))
        if how == "no-blank-line":  # a careless server: the next data line joins this event
            out.append(frames[i][:-1])
        elif how == "split" and len(frames[i]) > 1:
            cut = draw(st.integers(1, len(frames[i]) - 1))
            out += [frames[i][:cut], frames[i][cut:]]
        elif how == "merge" and i + 1 < len(frames):
            out.append(frames[i] + frames[i + 1])
            i += 1
        else:
            out.append(frames[i])
        i += 1
    return out


@settings(max_examples=300, deadline=None)
@given(regrouped(), st.booleans())
def test_chat_stream_read_in_any_grouping_same_as_the_general_path(
    reads: list[bytes], keep_text: bool
) -> None:
    _same("openai", reads, keep_text)


@st.composite
def completions_stream(draw: Any) -> list[bytes]:
    out = []
    for _ in range(draw(st.integers(1, 16))):
        choice: dict[str, Any] = {"index": 0, "text": draw(TEXT), "logprobs": None, "finish_reason": None}
        if draw(st.integers(0, 9)) == 0:
            choice["finish_reason"] = "length"
        out.append(b"data: " + orjson.dumps({"id": "cmpl-1", "choices": [choice]}) + b"\n\n")
    return [*out, b"data: [DONE]\n\n"]


@settings(max_examples=200, deadline=None)
@given(completions_stream(), st.booleans())
def test_completions_stream_same_as_the_general_path(frames: list[bytes], keep_text: bool) -> None:
    _same("openai-completions", frames, keep_text)


def _count_parses(frames: list[bytes], keep_text: bool) -> tuple[int, RequestRecord, StreamState]:
    """Feed whole frames to one exchange: (protocol parses, record, state)."""
    proto = get_protocol("openai")
    calls = 0
    real = proto.parse_event

    def counting(data: bytes, s: StreamState) -> int:
        nonlocal calls
        calls += 1
        return real(data, s)

    proto.parse_event = counting  # type: ignore[method-assign]
    rec = RequestRecord(request_id=1, status="error", scheduled_ns=0, sent_ns=0)
    sst = StreamState(keep_text)
    ex = h1._Exchange(rec, sst, proto.parse_event, True, False, _never_done(), proto.text_key)
    ex.mode = h1._M_SSE
    ex.dec = SSEDecoder()
    for f in frames:
        ex.on_body(f)
    return calls, rec, sst


@pytest.mark.parametrize("keep_text", [True, False])
def test_a_long_plain_stream_is_read_through_the_learned_frame(keep_text: bool) -> None:
    """Not only equal: the fast path is really taken (one JSON parse per event would fail this)."""
    frames = [
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"w%d "},"finish_reason":null}]}\n\n' % i
        for i in range(50)
    ]
    calls, rec, sst = _count_parses(frames, keep_text)
    assert len(rec.event_ns) == 50
    assert "".join(sst.text_parts) == ("".join(f"w{i} " for i in range(50)) if keep_text else "")
    # the first two events only: the second one's own parse proved the frame (no escape, its text once)
    assert calls == 2


def test_a_text_found_elsewhere_in_the_frame_is_proved_by_probes() -> None:
    """The second event's text ("c") is also the id: its own parse cannot tell where it was read, two probes
    (parses of the frame with other texts) do."""
    frames = [
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"%b"},"finish_reason":null}]}\n\n' % t
        for t in (b"a", b"c", b"d", b"e", b"f")
    ]
    calls, rec, sst = _count_parses(frames, True)
    assert sst.text_parts == ["a", "c", "d", "e", "f"] and len(rec.event_ns) == 5
    assert calls == 4


def _never_done() -> asyncio.Future[None]:
    loop = asyncio.new_event_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.close()
    return fut


# ---- learn_frame itself --------------------------------------------------------------------------------

CHAT = get_protocol("openai")


def _learn(frame: bytes) -> tuple[bytes, bytes] | None:
    assert CHAT.text_key is not None
    return learn_frame(CHAT.parse_event, CHAT.text_key, frame, frame.index(b"{"))


def test_learns_a_vllm_frame_and_a_spaced_one() -> None:
    vllm = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}]}\n\n'
    got = _learn(vllm)
    assert got == (vllm[: vllm.index(b"hi")], vllm[vllm.index(b"hi") + 2 :])
    spaced = b'data: {"choices": [{"delta": {"content": "hi"}, "finish_reason": null}]}\n\n'
    assert _learn(spaced) is not None


@pytest.mark.parametrize(
    "frame",
    [
        # usage, finish_reason or an error in the frame: not plain
        b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":{"completion_tokens":1}}\n\n',
        b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n',
        # an escape in the learned text: the closing quote cannot be found by a byte search
        b'data: {"choices":[{"delta":{"content":"a\\"b"}}]}\n\n',
        # the key twice (two choices), or hidden in a string: ambiguous
        b'data: {"choices":[{"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}\n\n',
        b'data: {"k\\"content":"x","choices":[{"delta":{"cont\\u0065nt":"x"}}]}\n\n',
        # text that is not a string
        b'data: {"choices":[{"delta":{"content":null}}]}\n\n',
    ],
)
def test_does_not_learn_what_it_cannot_stand_for(frame: bytes) -> None:
    assert _learn(frame) is None


def test_plain_flags_are_what_the_protocol_returns() -> None:
    sst = StreamState(True)
    assert CHAT.parse_event(b'{"choices":[{"delta":{"content":"x"}}]}', sst) == EV_PLAIN
