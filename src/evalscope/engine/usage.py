"""Check a server's reported token usage before it is counted (once per request, on the final usage).

A server's ``usage`` object is input from the network: it can hold strings, floats, negative numbers, NaN,
``1e12`` or nested junk. Counting it blindly crashed the aggregation (strings) or gave absurd throughput
(negative / huge). :func:`check_usage` accepts a count only when it is a non-negative integer below a hard
cap and plausible against what the client saw: the token-bearing events it counted, the ``max_tokens`` it
asked for, the prompt it counted. Otherwise the counted value is used and the reason is returned, so the
record can say why and the summary can count the disagreements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: No single request comes near this many tokens (prompt or completion): a larger count is junk.
MAX_TOKENS_PER_REQUEST = 100_000_000
#: A token-bearing event carries at least one token on every server we know; gateways that re-chunk text
#: may split a token over a few events, so usage is implausible only below ``events / EVENTS_PER_TOKEN``.
EVENTS_PER_TOKEN = 4
#: Server-side templates (chat formatting, images) add tokens the client cannot count: usage may exceed the
#: client's prompt count by this factor plus :data:`PROMPT_SLACK` before it is implausible.
PROMPT_FACTOR = 8
PROMPT_SLACK = 65_536


def as_count(v: Any) -> int | None:
    """``v`` as a token count: a non-negative int (or integral float) below the cap; None otherwise."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if 0 <= v <= MAX_TOKENS_PER_REQUEST else None
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return as_count(int(v))
    return None


def limit_of(max_tokens: int | None, params: Mapping[str, Any] | None) -> int | None:
    """The completion-token limit the request carried (``params`` are merged last, so they win)."""
    limit = max_tokens
    if params:
        for key in ("max_tokens", "max_completion_tokens"):
            v = params.get(key)
            if v is not None:
                limit = as_count(v)
    return limit


class CheckedUsage:
    """Validated counts; ``rejected`` names what was not believed (None when the server's usage was used)."""

    __slots__ = (
        "cached_tokens",
        "completion_from_usage",
        "completion_tokens",
        "prompt_tokens",
        "reasoning_tokens",
        "rejected",
    )

    def __init__(self) -> None:
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.cached_tokens: int | None = None
        self.rejected: str | None = None
        self.completion_from_usage = False


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def check_usage(usage: Any, events: int, counted_prompt: int | None, limit: int | None) -> CheckedUsage:
    """Validate ``usage`` (the server's final usage object) against what the client observed.

    Args:
        usage: the ``usage`` value as parsed from JSON (any type).
        events: token-bearing events the client counted (the fallback completion count).
        counted_prompt: prompt tokens the client counted (the fallback prompt count), if any.
        limit: the completion-token limit the request asked for, if any.
    """
    out = CheckedUsage()
    problems: list[str] = []
    if type(usage) is not dict and not isinstance(usage, Mapping):  # (JSON gives dict: skip the ABC check)
        out.prompt_tokens, out.completion_tokens = counted_prompt, events
        out.rejected = f"usage {_show(usage)} is not an object"
        return out
    ct_raw = usage.get("completion_tokens")
    ct = as_count(ct_raw)
    # Some servers give reasoning a budget of its own on top of max_tokens: the limit binds the rest.
    details = usage.get("completion_tokens_details")
    rt_raw = details.get("reasoning_tokens") if details is not None and isinstance(details, Mapping) else None
    rt = as_count(rt_raw)
    if "completion_tokens" not in usage and "prompt_tokens" in usage:
        pass  # embeddings: a prompt count only
    elif ct is None:
        problems.append(f"completion_tokens {_show(ct_raw)} is not a token count")
    elif limit is not None and ct - min(rt or 0, ct) > max(limit, events):
        problems.append(f"completion_tokens {ct} > max_tokens {limit}")
        ct = None
    elif ct * EVENTS_PER_TOKEN < events:
        problems.append(f"completion_tokens {ct} for {events} streamed token events")
        ct = None
    out.completion_tokens = ct if ct is not None or not problems else events
    out.completion_from_usage = ct is not None
    pt_raw = usage.get("prompt_tokens")
    pt = as_count(pt_raw)
    if pt is None and "prompt_tokens" in usage:
        problems.append(f"prompt_tokens {_show(pt_raw)} is not a token count")
    elif pt is not None and counted_prompt is not None and pt > PROMPT_FACTOR * counted_prompt + PROMPT_SLACK:
        problems.append(f"prompt_tokens {pt} for a prompt of about {counted_prompt}")
        pt = None
    out.prompt_tokens = pt if pt is not None else counted_prompt
    if rt_raw is not None:
        if rt is None or (out.completion_tokens is not None and rt > out.completion_tokens):
            problems.append(f"reasoning_tokens {_show(rt_raw)} is not plausible")
        else:
            out.reasoning_tokens = rt
    pdetails = usage.get("prompt_tokens_details")
    if pdetails is not None and isinstance(pdetails, Mapping) and pdetails.get("cached_tokens") is not None:
        cached = as_count(pdetails.get("cached_tokens"))
        if cached is None or (out.prompt_tokens is not None and cached > out.prompt_tokens):
            problems.append(f"cached_tokens {_show(pdetails.get('cached_tokens'))} is not plausible")
        else:
            out.cached_tokens = cached
    if problems:
        out.rejected = "; ".join(problems)
    return out
