"""Numbers the server reports about itself, per stage: prefix-cache hits, reasoning tokens, llama.cpp timings.

Engines say things the client cannot measure: how many prompt tokens came from the prefix cache
(``usage.prompt_tokens_details.cached_tokens``), how many completion tokens were reasoning
(``usage.completion_tokens_details.reasoning_tokens``), and llama.cpp's per-request ``timings`` (prompt and
decode tokens and milliseconds, speculative drafts proposed and accepted). :class:`ServerNumbers` folds them
in per successful request with a handful of integer additions (nothing kept per request), merges exactly
across worker processes, and yields the ``server`` block of a stage summary, or ``None`` when the server sent
none of them. Decoded tokens per iteration is derived from the stream itself (tokens per token-bearing event,
from server usage) and is reported whenever it is defined, since some servers bundle tokens per event for
other reasons than speculative decoding.

May import: ``engine.records`` and ``perf.metrics`` (the counter base class) only.
"""

from __future__ import annotations

from typing import Any

from evalscope.engine.records import RequestRecord
from evalscope.perf.metrics import FieldCounter, counter

_FIELDS: tuple[str, ...] = (
    "cached_requests",
    "cached_tokens",
    "cached_prompt_tokens",
    "reasoning_requests",
    "reasoning_tokens",
    "timings_requests",
    "prompt_n",
    "prompt_ms",
    "predicted_n",
    "predicted_ms",
    "draft_requests",
    "draft_n",
    "draft_n_accepted",
    "iter_requests",
    "iter_tokens",
    "iter_events",
)


@counter
class ServerNumbers(FieldCounter):
    """Sums of the server-reported numbers of one stage's successful requests (the summary's ``server``)."""

    __slots__ = _FIELDS
    name = "server"
    fields = _FIELDS

    def __init__(self) -> None:
        self.cached_requests = 0
        self.cached_tokens = 0
        self.cached_prompt_tokens = 0
        self.reasoning_requests = 0
        self.reasoning_tokens = 0
        self.timings_requests = 0
        self.prompt_n = 0.0
        self.prompt_ms = 0.0
        self.predicted_n = 0.0
        self.predicted_ms = 0.0
        self.draft_requests = 0
        self.draft_n = 0.0
        self.draft_n_accepted = 0.0
        self.iter_requests = 0
        self.iter_tokens = 0
        self.iter_events = 0

    def add(self, rec: RequestRecord) -> None:
        """Fold in one successful record (a few attribute reads when the server sent nothing)."""
        cached = rec.cached_tokens
        if cached is not None and isinstance(cached, int) and cached >= 0:
            self.cached_requests += 1
            self.cached_tokens += cached
            self.cached_prompt_tokens += max(rec.prompt_tokens or 0, cached)
        reasoning = rec.reasoning_tokens
        if reasoning is not None and isinstance(reasoning, int) and reasoning >= 0:
            self.reasoning_requests += 1
            self.reasoning_tokens += reasoning
        t = rec.timings
        if t:
            self.timings_requests += 1
            self.prompt_n += t.get("prompt_n", 0)
            self.prompt_ms += t.get("prompt_ms", 0)
            self.predicted_n += t.get("predicted_n", 0)
            self.predicted_ms += t.get("predicted_ms", 0)
            if "draft_n" in t:
                self.draft_requests += 1
                self.draft_n += t["draft_n"]
                self.draft_n_accepted += t.get("draft_n_accepted", 0)
        n = rec.n_events
        ct = rec.completion_tokens
        if n > 1 and ct is not None and ct >= n and rec.token_source == "usage":
            self.iter_requests += 1
            self.iter_tokens += ct - 1
            self.iter_events += n - 1

    @classmethod
    def from_state(cls, d: dict[str, Any] | None) -> ServerNumbers:
        s = cls()
        s.load_state(d or {})
        return s

    def summary(self) -> dict[str, Any] | None:
        """The stage summary's ``server`` block (None when the server reported nothing and no stream
        told tokens per event). Rates are ratios of sums: token-weighted over the stage's requests."""
        out: dict[str, Any] = {}
        if self.cached_requests:
            p = self.cached_prompt_tokens
            out["prefix_cache"] = {
                "requests": self.cached_requests,
                "cached_tokens": self.cached_tokens,
                "prompt_tokens": p,
                "hit_rate": self.cached_tokens / p if p else None,
            }
        if self.reasoning_requests:
            out["reasoning"] = {
                "requests": self.reasoning_requests,
                "reasoning_tokens": self.reasoning_tokens,
                "mean": self.reasoning_tokens / self.reasoning_requests,
            }
        if self.timings_requests:
            out["timings"] = {
                "requests": self.timings_requests,
                "prompt_n": self.prompt_n,
                "prompt_ms": self.prompt_ms,
                "prompt_tokens_per_s": 1000.0 * self.prompt_n / self.prompt_ms if self.prompt_ms else None,
                "predicted_n": self.predicted_n,
                "predicted_ms": self.predicted_ms,
                "predicted_tokens_per_s": 1000.0 * self.predicted_n / self.predicted_ms
                if self.predicted_ms
                else None,
            }
        if self.draft_requests:
            out["speculative"] = {
                "requests": self.draft_requests,
                "draft_n": self.draft_n,
                "draft_n_accepted": self.draft_n_accepted,
                "acceptance_rate": self.draft_n_accepted / self.draft_n if self.draft_n else None,
            }
        if self.iter_events:
            per_iter = self.iter_tokens / self.iter_events
            out["decoded_tokens_per_iter"] = {
                "requests": self.iter_requests,
                "mean": per_iter,
                # if each event is one decode step of 1 target token plus accepted drafts: p = 1 - 1/L
                "approx_acceptance_rate": max(0.0, 1.0 - 1.0 / per_iter) if per_iter > 0 else None,
            }
        return out or None
