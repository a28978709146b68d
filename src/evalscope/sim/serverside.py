"""Server-side numbers the simulator can report like real engines do: a prefix cache, llama.cpp's ``timings``
object, and a Prometheus ``/metrics`` page.

They exist so that CI can check the client's handling of what real servers send: vLLM / llama.cpp's
``usage.prompt_tokens_details.cached_tokens``, llama.cpp's per-request ``timings`` (with speculative-decoding
draft counts), and the gauges that ``evalscope perf --server-metrics`` scrapes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import orjson

#: Most cached blocks remembered (least recently used are evicted).
PREFIX_CACHE_BLOCKS = 65_536


class PrefixCache:
    """Block-level prefix cache, as vLLM's automatic prefix caching works: a prompt is split into blocks of
    ``block`` tokens, each identified by a hash chained over all blocks before it; the cached part of a new
    prompt is its leading run of blocks already seen. The last prompt token is always computed (as engines
    do), so a prompt is never fully cached."""

    def __init__(self, block: int, capacity: int = PREFIX_CACHE_BLOCKS) -> None:
        self.block = max(1, block)
        self.capacity = capacity
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def lookup_insert(self, ids: list[int]) -> int:
        """Cached tokens of the prompt ``ids``; its blocks are then remembered for the next prompts."""
        b = self.block
        h = 0
        hit = 0
        missed = False
        blocks = self._blocks
        for start in range(0, len(ids) - len(ids) % b, b):
            h = hash((h, *ids[start : start + b]))
            if not missed and h in blocks:
                hit += b
                blocks.move_to_end(h)
            else:
                missed = True
                blocks[h] = None
                if len(blocks) > self.capacity:
                    blocks.popitem(last=False)
        return min(hit, max(0, len(ids) - 1))


def timings_json(
    prompt_n: int,
    prompt_ns: int,
    predicted_n: int,
    predicted_ns: int,
    iterations: int,
    draft_acceptance: float,
) -> bytes:
    """llama.cpp's ``timings`` object (field names as llama-server sends them).

    With ``draft_acceptance`` > 0, speculative decoding is simulated: each stream chunk is one decode
    iteration giving one target token plus the accepted drafts, so ``draft_n_accepted`` is the tokens beyond
    one per iteration and ``draft_n`` the drafts that acceptance rate implies.
    """
    prompt_ms = prompt_ns / 1e6
    predicted_ms = predicted_ns / 1e6
    t: dict[str, float] = {
        "prompt_n": prompt_n,
        "prompt_ms": round(prompt_ms, 3),
        "prompt_per_token_ms": round(prompt_ms / prompt_n, 3) if prompt_n else 0.0,
        "prompt_per_second": round(1000.0 * prompt_n / prompt_ms, 3) if prompt_ms > 0 else 0.0,
        "predicted_n": predicted_n,
        "predicted_ms": round(predicted_ms, 3),
        "predicted_per_token_ms": round(predicted_ms / predicted_n, 3) if predicted_n else 0.0,
        "predicted_per_second": round(1000.0 * predicted_n / predicted_ms, 3) if predicted_ms > 0 else 0.0,
    }
    if draft_acceptance > 0:
        accepted = max(0, predicted_n - max(1, iterations))
        t["draft_n"] = round(accepted / draft_acceptance)
        t["draft_n_accepted"] = accepted
    return orjson.dumps(t)


def _line(name: str, kind: str, help_: str, samples: Iterable[tuple[str, float]]) -> str:
    out = [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    out += [f"{name}{labels} {value!r}" for labels, value in samples]
    return "\n".join(out)


def metrics_text(
    models: list[str],
    running: int,
    waiting: int,
    kv_usage: float,
    prompt_tokens: int,
    generation_tokens: int,
    requests: int,
) -> str:
    """A Prometheus text exposition page with vLLM's names (the simulator imitates vLLM's OpenAI server)."""
    escaped = models[0].replace("\\", "\\\\").replace('"', '\\"')
    lab = f'{{model_name="{escaped}"}}'
    parts = [
        _line("vllm:num_requests_running", "gauge", "Requests in model execution.", [(lab, float(running))]),
        _line(
            "vllm:num_requests_waiting", "gauge", "Requests waiting to be processed.", [(lab, float(waiting))]
        ),
        _line("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent.", [(lab, kv_usage)]),
        _line(
            "vllm:prompt_tokens_total", "counter", "Prefill tokens processed.", [(lab, float(prompt_tokens))]
        ),
        _line(
            "vllm:generation_tokens_total",
            "counter",
            "Generation tokens processed.",
            [(lab, float(generation_tokens))],
        ),
        _line("vllm:request_received_total", "counter", "Requests received.", [(lab, float(requests))]),
    ]
    return "\n".join(parts) + "\n"
