"""What the eval runner knows about a model: the :class:`Model` protocol, its :class:`Generation` and counters.

``generate`` is per request, not per batch: the runner is asyncio-first and already bounds the samples in
flight, each sample is journalled the moment its answer is scored, and a streamed answer has its own TTFT. A
batched local model (``TransformersModel``) gathers concurrent calls into batches behind the same method, so the
runner never learns whether its model batches. ``capabilities`` tells the runner what a model can do;
``stats()`` hands it the counters it writes into the manifest (no reaching into clients or gates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from evalscope.engine.records import ErrorInfo


@dataclass(slots=True)
class Generation:
    """What the model produced for one (sample, repeat)."""

    text: str = ""
    reasoning: str | None = None
    raw_text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens the server served from its prefix cache
    timings: dict[str, float] | None = None  # llama.cpp's server-side timings
    latency_s: float | None = None
    ttft_s: float | None = None
    attempts: int = 0
    cached: bool = False
    error: ErrorInfo | None = None
    gave_up: str | None = None
    retried_errors: list[str] = field(default_factory=list)
    #: server quirks seen on this answer (``usage_rejected``, ``not_streamed``, ``sse_mislabelled``)
    quirks: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a model can do: stream (TTFT is measured), return logprobs, and how many requests it takes at once
    (``None``: no limit of its own; the runner's ``eval_batch_size`` applies)."""

    streaming: bool = True
    logprobs: bool = False
    max_in_flight: int | None = None


@dataclass(slots=True)
class ModelStats:
    """Counters of one session, written into the run manifest."""

    sent: int = 0
    retries: int = 0
    #: requests resent because a kept-alive connection was closed under them
    reconnects: int = 0
    #: times the adaptive concurrency gate cut its limit (429/503 or timeouts)
    concurrency_cuts: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requests_sent": self.sent,
            "retries": self.retries,
            "reconnects": self.reconnects,
            "concurrency_cuts": self.concurrency_cuts,
        }


@runtime_checkable
class Model(Protocol):
    """A model the eval runner (or a judge scorer) can ask: HTTP endpoint, built-in simulator, local weights."""

    #: identity in fingerprints, cache keys and reports (never credentials)
    endpoint_id: str

    @property
    def name(self) -> str:
        """The model name (may be learned from the server by :meth:`start`)."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def start(self, check: bool = True, check_model: bool = True) -> None:
        """Get ready to answer (start a server, load weights); with ``check``, verify the endpoint answers and,
        with ``check_model``, that it serves :attr:`name` (a blank name is adopted from the server)."""
        ...

    async def generate(
        self, messages: list[dict[str, Any]], params: dict[str, Any], request_id: str, repeat: int = 0
    ) -> Generation:
        """One answer to ``messages``; never raises for endpoint failures (they are in ``Generation.error``)."""
        ...

    def stats(self) -> ModelStats: ...

    async def aclose(self) -> None:
        """Release connections, servers, weights. Idempotent."""
        ...
