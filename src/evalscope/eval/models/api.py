"""An OpenAI-compatible model for eval: engine client + retries + AIMD concurrency + response cache.

``generate`` returns one :class:`Generation` per sample: the answer text with reasoning removed, the reasoning
kept apart (``reasoning_content`` from the server, or ``<think>...</think>`` found in the text), the finish
reason, usage, timings and (when every attempt failed) the error.
"""

from __future__ import annotations

import re
from typing import Any

from evalscope.engine.client import Client
from evalscope.engine.records import Request, RequestRecord
from evalscope.engine.redact import redact_url
from evalscope.engine.retry import AIMDGate, RetryPolicy, send_with_retry
from evalscope.engine.session import Timeouts
from evalscope.eval.cache import ResponseCache, cache_key
from evalscope.eval.models.base import Capabilities, Generation, ModelStats

__all__ = ["ApiModel", "Generation", "split_reasoning"]

_THINK_END = re.compile(r"</think\s*>", re.IGNORECASE)
_THINK_START = re.compile(r"^\s*<think\s*>", re.IGNORECASE)


def split_reasoning(text: str, reasoning: str | None) -> tuple[str, str | None]:
    """(answer, reasoning): text up to the last ``</think>`` moves into the reasoning."""
    if text and _THINK_END.search(text):
        parts = _THINK_END.split(text)
        answer = parts[-1]
        inline = "</think>".join(parts[:-1])
        inline = _THINK_START.sub("", inline, count=1).strip()
        merged = "\n".join(x for x in (reasoning, inline) if x)
        return answer.lstrip("\n"), merged or None
    return text, reasoning


def _from_record(rec: RequestRecord) -> Generation:
    raw = rec.text or ""
    answer, reasoning = split_reasoning(raw, rec.reasoning)
    latency = None if rec.end_ns is None else (rec.end_ns - rec.sent_ns) / 1e9
    ttft_ns = rec.ttft_ns()
    return Generation(
        text=answer,
        reasoning=reasoning,
        raw_text=raw,
        finish_reason=rec.finish_reason,
        prompt_tokens=rec.prompt_tokens,
        completion_tokens=rec.completion_tokens,
        reasoning_tokens=rec.reasoning_tokens,
        cached_tokens=rec.cached_tokens,
        timings=rec.timings,
        latency_s=latency,
        ttft_s=None if ttft_ns is None else ttft_ns / 1e9,
        error=rec.error if not rec.ok else None,
        quirks=_quirks(rec),
    )


def _quirks(rec: RequestRecord) -> tuple[str, ...]:
    if rec.usage_rejected is None and rec.ttft_measured and rec.sse_content_type is None:
        return ()
    out = []
    if rec.usage_rejected is not None:
        out.append("usage_rejected")
    if not rec.ttft_measured:
        out.append("not_streamed")
    if rec.sse_content_type is not None:
        out.append("sse_mislabelled")
    return tuple(out)


class ApiModel:
    """Sends eval requests through one shared :class:`Client` under an :class:`AIMDGate` (a :class:`Model`)."""

    def __init__(
        self,
        url: str,
        model: str,
        api: str = "openai",
        api_key: str | None = None,
        concurrency: int = 32,
        policy: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        stream: bool = True,
        endpoint_id: str | None = None,
        cache: ResponseCache | None = None,
        transport: str | None = None,
    ) -> None:
        self.client = Client(
            url,
            model,
            api=api,
            api_key=api_key,
            keep_text=True,
            stream=stream,
            timeouts=timeouts,
            transport=transport,
        )
        self.policy = policy or RetryPolicy()
        self.gate = AIMDGate(concurrency)
        self.endpoint_id = endpoint_id or redact_url(self.client.url) or ""
        self.cache = cache
        self.sent = 0
        self.retries = 0
        self.reconnects = 0  # requests resent because a kept-alive connection was closed under them

    @property
    def model(self) -> str:
        return self.client.model

    @property
    def name(self) -> str:
        return self.client.model

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=self.client.stream, logprobs=False, max_in_flight=None)

    async def start(self, check: bool = True, check_model: bool = True) -> None:
        """Preflight the endpoint; a blank model name is adopted from the server's /v1/models."""
        if not check:
            return
        from evalscope.engine.preflight import preflight

        await preflight(self.client, check_model=check_model)

    def stats(self) -> ModelStats:
        return ModelStats(
            sent=self.sent, retries=self.retries, reconnects=self.reconnects, concurrency_cuts=self.gate.cuts
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def body(self, req: Request) -> dict[str, Any]:
        """The exact body the client will send for ``req`` (the cache key covers all of it)."""
        return self.client.protocol.build_body(req, self.client.model, self.client.stream)

    async def generate(
        self, messages: list[dict[str, Any]], params: dict[str, Any], request_id: str, repeat: int = 0
    ) -> Generation:
        p = dict(params)
        max_tokens = p.pop("max_tokens", None)
        req = Request(request_id=request_id, messages=messages, max_tokens=max_tokens, params=p or None)
        key: str | None = None
        if self.cache is not None:
            key = cache_key(self.client.model, self.endpoint_id, self.body(req), repeat)
            hit = self.cache.get(key)
            if hit is not None:
                gen = Generation(
                    text=hit.get("text", ""),
                    reasoning=hit.get("reasoning"),
                    raw_text=hit.get("raw_text", hit.get("text", "")),
                    finish_reason=hit.get("finish_reason"),
                    prompt_tokens=hit.get("prompt_tokens"),
                    completion_tokens=hit.get("completion_tokens"),
                    reasoning_tokens=hit.get("reasoning_tokens"),
                    cached=True,
                )
                return gen

        def rid(attempt: int) -> str:
            return request_id if attempt == 1 else f"{request_id}#{attempt}"

        async def send(r: Request) -> RequestRecord:
            self.sent += 1
            if self.client.is_simulator is None:
                await self.client.identify()  # request ids go to our simulator only
            rec = await self.client.send(r)
            self.reconnects += rec.reconnects
            return rec

        res = await send_with_retry(send, req, self.policy, gate=self.gate, request_id=rid)
        self.retries += res.attempts - 1
        gen = _from_record(res.record)
        gen.attempts = res.attempts
        gen.gave_up = res.gave_up
        gen.retried_errors = [
            e.kind if e.http_status is None else f"{e.kind}:{e.http_status}" for e in res.errors
        ]
        if gen.ok and self.cache is not None and key is not None:
            self.cache.put(
                key,
                {
                    "text": gen.text,
                    "reasoning": gen.reasoning,
                    "raw_text": gen.raw_text,
                    "finish_reason": gen.finish_reason,
                    "prompt_tokens": gen.prompt_tokens,
                    "completion_tokens": gen.completion_tokens,
                    "reasoning_tokens": gen.reasoning_tokens,
                },
            )
        return gen
