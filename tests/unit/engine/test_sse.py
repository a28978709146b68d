"""SSE decoder: framing edge cases and random re-chunking (property test)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evalscope.engine.sse import SSEDecoder


def decode_all(chunks: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    dec = SSEDecoder()
    out: list[tuple[bytes | None, bytes]] = []
    for c in chunks:
        out.extend(dec.feed(c))
    out.extend(dec.close())
    return out


STREAM = (
    b": keep-alive\r\n\r\n"
    b'data: {"a": "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c"}\r\n\r\n'
    b"event: ping\ndata: x\n\n"
    b"data: line1\ndata: line2\n\n"
    b'data: {"error": {"message": "boom"}}\r\r'
    b"data:nospace\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    (None, '{"a": "héllo 世界"}'.encode()),
    (b"ping", b"x"),
    (None, b"line1\nline2"),
    (None, b'{"error": {"message": "boom"}}'),
    (None, b"nospace"),
    (None, b"[DONE]"),
]


def test_whole_stream() -> None:
    assert decode_all([STREAM]) == EXPECTED


def test_byte_by_byte_splits_utf8_and_crlf() -> None:
    assert decode_all([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_random_rechunking_gives_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = []
    prev = 0
    for p in points:
        chunks.append(STREAM[prev:p])
        prev = p
    chunks.append(STREAM[prev:])
    assert decode_all(chunks) == EXPECTED


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.binary(min_size=0, max_size=50).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=8
    ),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.data(),
)
def test_arbitrary_payloads_any_line_ending(payloads: list[bytes], eol: bytes, data: st.DataObject) -> None:
    stream = b"".join(b"data: " + p + eol + eol for p in payloads)
    cuts = data.draw(st.lists(st.integers(0, max(len(stream), 0)), max_size=20))
    chunks, prev = [], 0
    for c in sorted(set(cuts)):
        chunks.append(stream[prev:c])
        prev = c
    chunks.append(stream[prev:])
    got = decode_all(chunks)
    # "data: " + p: exactly one space after the colon is framing, the rest is payload.
    assert [d for _, d in got] == payloads


def test_huge_line_is_linear() -> None:
    big = b"x" * (8 * 1024 * 1024)
    dec = SSEDecoder()
    out = []
    step = 64 * 1024
    payload = b"data: " + big + b"\n\n"
    for i in range(0, len(payload), step):
        out.extend(dec.feed(payload[i : i + step]))
    assert len(out) == 1 and out[0][1] == big


def test_trailing_event_without_blank_line_flushed_on_close() -> None:
    assert decode_all([b"data: a\n\ndata: b"]) == [(None, b"a"), (None, b"b")]


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=40),
    st.sampled_from([b"", b"data: x", b"data: x\n", b"event: e\n", b"\r", b"data: a\n\n"]),
    st.sampled_from([b"data:", b"data: ", b"data:  ", b"dat", b""]),
    st.sampled_from([b"\n\n", b"\r\n\r\n", b"\n", b"\n\ndata: y\n\n", b""]),
)
def test_single_event_fast_path_matches_the_general_path(
    payload: bytes, before: bytes, field: bytes, end: bytes
) -> None:
    """``single`` (the one-whole-event shortcut) answers exactly when the general path yields one event and
    keeps no state, and then with the same payload; from any prior state the decoder's output is unchanged."""
    chunk = field + payload + end
    fast, slow = SSEDecoder(), SSEDecoder()
    fast_out = fast.feed(before)
    slow_out = [ev for i in range(len(before)) for ev in slow.feed(before[i : i + 1])]
    one = fast.single(chunk)
    byte_out = [ev for i in range(len(chunk)) for ev in slow.feed(chunk[i : i + 1])]
    if one is not None:
        assert byte_out == [(None, one)]
        fast_out.append((None, one))
    else:
        fast_out.extend(fast.feed(chunk))
    slow_out.extend(byte_out)
    assert fast_out + fast.close() == slow_out + slow.close()
