"""API protocol plugins: build a request body, parse one stream event or one whole response.

A protocol knows nothing about load shapes, metrics or files. ``parse_event`` runs once per stream event on
the hot path, so it returns small int flags instead of objects and accumulates into a slots state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from evalscope.engine.records import ErrorInfo, Request
from evalscope.registry import Registry

#: ``parse_event`` flags.
EV_NONE = 0  # no token (role-only delta, usage-only chunk, keep-alive)
EV_TOKEN = 1  # carried a token in some channel (content, reasoning, tool call)
EV_CONTENT = 2  # carried a non-empty content delta (always with EV_TOKEN)
EV_CHOICE = 4  # had non-empty ``choices`` (vLLM's TTFT event)
EV_DONE = 8  # the ``[DONE]`` sentinel


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


PROTOCOLS: Registry[type[Protocol]] = Registry("api", "evalscope.protocols")
PROTOCOLS.add("openai", "evalscope.engine.protocols.openai:OpenAIChat")
PROTOCOLS.add("openai-completions", "evalscope.engine.protocols.openai:OpenAICompletions")
PROTOCOLS.add("openai-embeddings", "evalscope.engine.protocols.openai:OpenAIEmbeddings")


def get_protocol(name: str, continuous_usage: bool = False) -> Protocol:
    """Instantiate the protocol registered as ``name`` (unknown names suggest the closest)."""
    return PROTOCOLS.get(name)(continuous_usage=continuous_usage)
