"""API protocol plugins: build a request body, parse one stream event or one whole response.

A protocol knows nothing about load shapes, metrics or files. ``parse_event`` runs once per stream event on
the hot path, so it returns small int flags instead of objects and accumulates into a slots state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from evalscope.engine.records import ErrorInfo, Request
from evalscope.registry import Registry

#: ``parse_event`` flags.
EV_NONE = 0  # no token (role-only delta, usage-only chunk, keep-alive)
EV_TOKEN = 1  # carried a token in some channel (content, reasoning, tool call)
EV_CONTENT = 2  # carried a non-empty content delta (always with EV_TOKEN)
EV_CHOICE = 4  # had non-empty ``choices`` (vLLM's TTFT event)
EV_DONE = 8  # the ``[DONE]`` sentinel
#: What a plain text event returns: a choice with a non-empty text delta and nothing else.
EV_PLAIN = EV_CHOICE | EV_TOKEN | EV_CONTENT
#: Bytes that cannot stand raw inside a JSON string: a quote, a backslash, control characters.
NOT_PLAIN = bytes(range(32)) + b'"\\'


class ProtocolError(Exception):
    """Raised by a parser for an event that is not the protocol's shape (-> ``malformed_stream``)."""


class StreamState:
    """What a parser accumulates over one response. Text parts are kept only when ``keep_text``."""

    __slots__ = (
        "done",
        "error",
        "event_tokens",
        "finish_reason",
        "keep_text",
        "reasoning_parts",
        "text_parts",
        "timings",
        "tool_calls",
        "usage",
        "usage_completion",
    )

    def __init__(self, keep_text: bool = False) -> None:
        self.keep_text = keep_text
        self.text_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, float] | None = None  # llama.cpp's timings, read with the final usage
        self.usage_completion = 0  # running completion_tokens from continuous usage stats
        self.event_tokens = 0  # tokens the last event carried, when continuous usage says so, else 0
        self.finish_reason: str | None = None
        self.done = False
        self.error: ErrorInfo | None = None


class Protocol(ABC):
    """One API dialect. Subclasses are registered in :data:`PROTOCOLS` by name."""

    name: str = ""
    default_path: str = "/v1/chat/completions"
    supports_stream: bool = True
    #: The JSON key (``b'"content":'``) of a stream event's text, for :func:`learn_frame`. Set it only when
    #: ``parse_event`` reads that value for nothing but its truth and to append it to ``text_parts``.
    text_key: bytes | None = None

    def __init__(self, continuous_usage: bool = False) -> None:
        #: Ask for usage in every chunk (a vLLM extension; the OpenAI API rejects it, so it is opt-in).
        self.continuous_usage = continuous_usage

    @abstractmethod
    def build_body(self, request: Request, model: str, stream: bool) -> dict[str, Any]:
        """The JSON body for ``request``; ``request.params`` is merged last so users can override."""

    @abstractmethod
    def parse_event(self, data: bytes, st: StreamState) -> int:
        """Parse one SSE ``data`` payload into ``st``; return ``EV_*`` flags. Raise ProtocolError if malformed."""

    @abstractmethod
    def parse_response(self, obj: dict[str, Any], st: StreamState) -> int:
        """Parse a whole (non-stream) JSON response into ``st``; return ``EV_*`` flags."""


def text_span(frame: bytes, key: bytes) -> tuple[int, int] | None:
    """(opening quote, closing quote) of the string value of the one ``key`` in ``frame``, a whole SSE event
    ending with a blank line; ``None`` when the key is absent or repeated, its value is not a string, or that
    string holds an escape (its closing quote cannot be found by a byte search)."""
    if frame.count(key) != 1:
        return None
    p = frame.find(key) + len(key)
    while frame[p : p + 1] == b" ":
        p += 1
    if frame[p : p + 1] != b'"':
        return None
    q = frame.find(b'"', p + 1)
    if q < 0 or frame.find(b"\\", p + 1, q) >= 0 or not frame.endswith(b"\n\n"):
        return None  # an escape in this event's own text: the next plain event may do
    return p, q


def learn_frame(
    parse: Callable[[bytes, StreamState], int], key: bytes, frame: bytes, start: int
) -> tuple[bytes, bytes] | None:
    """The bytes around the text of a plain text event, so that later events of the same stream can be read
    without a JSON parse; ``None`` when this event cannot serve.

    ``frame`` is one whole SSE event (``data: {...}\\n\\n``) whose payload starts at ``start``. Servers repeat
    the same bytes around each token's text (same id, model, created, index, finish_reason null), so a later
    frame that starts with ``prefix``, ends with ``suffix`` and has between them a non-empty run of bytes free
    of quotes, backslashes and control characters (valid UTF-8) is the same JSON with another string in that
    one place: the JSON lexer is inside that string from the first byte of the run to its last, whatever the
    bytes are. The protocol reads that string only for its truth and its text (``Protocol.text_key``), so
    parsing such a frame gives ``EV_PLAIN`` and the run as text. That is checked, not assumed: the frame is
    accepted only if the text sits in exactly one ``key`` and parsing it with the text replaced by ``x``, then by
    ``y``, gives ``EV_PLAIN``, that text and no other effect on a fresh state (two probes: a text that the
    protocol really reads elsewhere, under an escaped key, cannot equal both).
    """
    span = text_span(frame, key)
    if span is None:
        return None
    p, q = span
    prefix, suffix = frame[: p + 1], frame[q:]
    head, tail = prefix[start:], suffix[:-2]
    for probe in ("x", "y"):  # two texts: a text found elsewhere cannot follow both
        st = StreamState(True)
        try:
            flags = parse(head + probe.encode() + tail, st)
        except Exception:  # noqa: BLE001 - the probe is ours; any failure means "do not learn"
            return None
        if (
            flags != EV_PLAIN
            or st.text_parts != [probe]
            or st.reasoning_parts
            or st.tool_calls
            or st.usage is not None
            or st.timings is not None
            or st.usage_completion
            or st.event_tokens
            or st.finish_reason is not None
            or st.done
            or st.error is not None
        ):
            return None
    return prefix, suffix


PROTOCOLS: Registry[type[Protocol]] = Registry("api", "evalscope.protocols")
PROTOCOLS.add("openai", "evalscope.engine.protocols.openai:OpenAIChat")
PROTOCOLS.add("openai-completions", "evalscope.engine.protocols.openai:OpenAICompletions")
PROTOCOLS.add("openai-embeddings", "evalscope.engine.protocols.openai:OpenAIEmbeddings")


def get_protocol(name: str, continuous_usage: bool = False) -> Protocol:
    """Instantiate the protocol registered as ``name`` (unknown names suggest the closest)."""
    return PROTOCOLS.get(name)(continuous_usage=continuous_usage)
