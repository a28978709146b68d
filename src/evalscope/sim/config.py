"""SimConfig: every knob of the simulator, declared once (the CLI and ``SimProcess`` are built from it).

Times are given in milliseconds because that is how people think about latency; the server converts them to
integer nanoseconds once per request.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evalscope.sim.judge import JudgeTruth

Policy = Literal["random", "echo", "choice", "scripted", "judge"]
ToolPolicy = Literal["match", "first", "never"]
OutputDist = Literal["fixed", "uniform", "normal"]
UsageFault = Literal["string", "text", "negative", "huge", "float", "junk"]
ReplyQuirk = Literal[
    "empty_stream",
    "json_for_stream",
    "text_plain",
    "redirect_301",
    "redirect_302",
    "redirect_303",
    "redirect_307",
    "redirect_308",
]

#: Fault kinds in the order one uniform draw walks their rates (the order is part of the seeded behaviour).
FAULT_KINDS: tuple[str, ...] = (
    "http_500",
    "http_429",
    "drop",
    "malformed",
    "stall",
    "no_done",
    "error_event",
)


class ScriptRule(BaseModel):
    """One scripted reply: the first rule whose ``pattern`` (``re.search``) matches the prompt wins."""

    model_config = ConfigDict(extra="forbid")

    pattern: str
    reply: str = ""
    #: ``{"name": ..., "arguments": {...}}``: with ``tools`` in the request, answer with this call (sim/tools.py)
    tool_call: dict[str, Any] | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex {v!r}: {exc}") from exc
        return v


class SimConfig(BaseModel):
    """All simulator settings; defaults give a fast, fault-free server answering ``sim-model``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # latency model
    ttft_ms: float = Field(default=50.0, ge=0, description="Time to first token (ms).")
    ttft_per_token_ms: float = Field(
        default=0.0, ge=0, description="Extra TTFT per prompt token (ms), prefill cost."
    )
    itl_ms: float = Field(
        default=10.0, ge=0, description="Inter-token latency (ms); a chunk of k tokens waits k*ITL."
    )
    jitter: float = Field(
        default=0.0, ge=0, le=1, description="Each delay is scaled by 1+U(-jitter, +jitter)."
    )
    seed: int = Field(default=0, description="Seed of every random choice (jitter, faults, replies).")

    # output length
    output_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Mean output length when the request does not force one (None: see default).",
    )
    output_dist: OutputDist = Field(
        default="fixed", description="Distribution of the output length around the mean."
    )
    output_spread: float = Field(
        default=0.25, ge=0, le=1, description="uniform: mean*(1±spread); normal: std = mean*spread."
    )
    default_output_tokens: int = Field(
        default=16, ge=1, description="Output length when neither max_tokens nor output_tokens is given."
    )
    tokens_per_chunk: int = Field(default=1, ge=1, description="Tokens carried by each stream chunk.")
    reasoning_tokens: int = Field(
        default=0,
        ge=0,
        description="Reasoning tokens streamed in reasoning_content before the content (extra).",
    )
    max_model_len: int = Field(
        default=32768, ge=1, description="Reported by /tokenize; longer prompts get 400."
    )

    # what real servers send differently (server-side numbers, stream endings)
    stream_usage: bool = Field(
        default=True,
        description="Send usage in streams when asked (off: never, like llama-cpp-python's server).",
    )
    send_done: bool = Field(
        default=True,
        description="End streams with 'data: [DONE]' (off: end after the finish_reason chunk, like "
        "transformers serve).",
    )
    prefix_cache: bool = Field(
        default=False,
        description="Report usage.prompt_tokens_details.cached_tokens from a block prefix cache over the "
        "prompts seen.",
    )
    prefix_block: int = Field(default=16, ge=1, description="Tokens per prefix-cache block.")
    timings: bool = Field(
        default=False,
        description="Add llama.cpp's timings object (prompt/predicted n, ms, per second) to the last event.",
    )
    draft_acceptance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="With timings: simulate speculative decoding (draft_n, draft_n_accepted) at this "
        "acceptance rate; each chunk is one decode step (use --tokens-per-chunk > 1).",
    )
    kv_cache_tokens: int = Field(
        default=262144, ge=1, description="KV-cache capacity (tokens) behind /metrics' cache usage gauge."
    )

    # capacity model (sim/capacity.py; formulas in docs/capacity.md); all off by default
    max_batch: int | None = Field(
        default=None,
        ge=1,
        description="At most this many sequences are generated at once; the rest wait in a FIFO queue "
        "(their wait is truth's queue_ns).",
    )
    itl_slope_ms: float = Field(
        default=0.0,
        ge=0,
        description="Decode step grows with the running batch: ITL = itl_ms + itl_slope_ms * running.",
    )
    kv_budget_tokens: int | None = Field(
        default=None,
        ge=1,
        description="KV-cache budget (tokens): a request is admitted only while the running sequences' "
        "prompt + planned output tokens plus its own fit.",
    )

    # replies
    policy: Policy = Field(
        default="random", description="How reply text is made: random, echo, choice, scripted, judge."
    )
    judge: JudgeTruth | None = Field(
        default=None, description="The judge policy's hidden truth (sim/judge.py); defaults when None."
    )
    script: str | None = Field(
        default=None, description="JSON or JSONL file of {pattern, reply} rules (scripted)."
    )
    script_rules: list[ScriptRule] = Field(default_factory=list, description="Inline scripted rules.")
    script_default: str = Field(default="OK", description="Scripted reply when no rule matches.")
    tool_policy: ToolPolicy = Field(
        default="match",
        description="With tools in a request: match (call the tool sharing most words with the question; "
        "text after a tool result), first (always the first tool), never (always text).",
    )
    embedding_dim: int = Field(default=64, ge=1, description="Length of /v1/embeddings vectors.")

    # fault injection (probability per request, mutually exclusive)
    error_rate: float = Field(
        default=0.0, ge=0, le=1, description="HTTP 500 with an OpenAI-style error body."
    )
    rate_429: float = Field(default=0.0, ge=0, le=1, description="HTTP 429 with a Retry-After header.")
    retry_after: float = Field(default=1.0, ge=0, description="Retry-After seconds sent with 429.")
    drop_rate: float = Field(default=0.0, ge=0, le=1, description="Abort the connection mid-stream.")
    malformed_rate: float = Field(default=0.0, ge=0, le=1, description="Send 'data: {not json' mid-stream.")
    stall_rate: float = Field(
        default=0.0, ge=0, le=1, description="Stop sending mid-stream, keep the socket open."
    )
    no_done_rate: float = Field(
        default=0.0, ge=0, le=1, description="End the body cleanly mid-stream, no finish_reason, no [DONE]."
    )
    error_event_rate: float = Field(default=0.0, ge=0, le=1, description="Send an error object mid-stream.")
    usage_fault: UsageFault | None = Field(
        default=None,
        description="Send bad usage in every reply: counts as numeric strings ('8'), as text ('many'), "
        "negative, huge (1e12), non-integer floats, or junk (not an object).",
    )
    reply_quirk: ReplyQuirk | None = Field(
        default=None,
        description="Answer every generation oddly: empty_stream ([DONE] only), json_for_stream (a whole "
        "body when a stream was asked for), text_plain (SSE labelled text/plain), redirect_30x (the POST is "
        "redirected to /sim/redirected/...; a GET there answers 200).",
    )
    stall_max_s: float = Field(
        default=300.0, gt=0, description="A stalled request is aborted after this long."
    )

    # serving
    api_key: str | None = Field(
        default=None, description="If set, /v1 requests need 'Authorization: Bearer <key>'."
    )
    models: list[str] = Field(
        default_factory=lambda: ["sim-model"], min_length=1, description="Served models."
    )
    emit_timestamps: bool = Field(
        default=False, description="Add sim_ns (perf_counter_ns at send) to each chunk."
    )
    loading_ms: float = Field(
        default=0.0,
        ge=0,
        description="Answer every request with 503 'Loading model' for this long after start (ms), as "
        "llama-server does while it loads the weights.",
    )

    # connections (real servers' habits; all off by default, see sim/conns.py)
    keepalive_max_requests: int | None = Field(
        default=None,
        ge=1,
        description="Requests served per kept-alive connection; the last reply says 'Connection: close'.",
    )
    idle_timeout_ms: float | None = Field(
        default=None, ge=0, description="Close a kept-alive connection idle this long (ms): idle reaping."
    )
    fin_delay_ms: float = Field(
        default=0.0,
        ge=0,
        description="The client sees an unannounced server close (idle reaping, silent_close_rate) only "
        "after this long (ms); a request it sends meanwhile is lost unanswered (the race with the FIN).",
    )
    close_rate: float = Field(
        default=0.0, ge=0, le=1, description="Fraction of replies sent with 'Connection: close'."
    )
    silent_close_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Fraction of replies after which the server closes the connection without saying so "
        "(seen from llama-server after streams); the client sees it fin_delay_ms later.",
    )
    max_workers: int | None = Field(
        default=None,
        ge=1,
        description="Serving workers; each owns a connection until it closes, others wait unread.",
    )
    worker_queue: int | None = Field(
        default=None,
        ge=0,
        description="Connections that may wait for a worker; more are accepted and closed at once.",
    )
    uuid_request_ids: bool = Field(
        default=False, description="Answer 400 with an empty body to a non-UUID X-Request-Id."
    )

    # truth
    truth: bool = Field(
        default=True, description="Record per-request truth (disable for the leanest server)."
    )
    truth_max: int = Field(
        default=100_000, ge=0, description="Most truth records kept (oldest evicted first)."
    )

    # timer
    spin_us: int = Field(
        default=1000,
        ge=0,
        description="Wake this early and yield-spin to the due time: OS timers are only ms-precise.",
    )

    @model_validator(mode="after")
    def _rates_fit(self) -> SimConfig:
        total = sum(self.fault_rates().values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:.3f}; they are exclusive and must sum to <= 1")
        return self

    @model_validator(mode="after")
    def _queue_needs_workers(self) -> SimConfig:
        if self.worker_queue is not None and self.max_workers is None:
            raise ValueError("worker_queue bounds the wait for a worker: set max_workers too")
        return self

    def fault_rates(self) -> dict[str, float]:
        """Rate of each fault kind, keyed by the names used in truth and stats."""
        return {
            "http_500": self.error_rate,
            "http_429": self.rate_429,
            "drop": self.drop_rate,
            "malformed": self.malformed_rate,
            "stall": self.stall_rate,
            "no_done": self.no_done_rate,
            "error_event": self.error_event_rate,
        }
