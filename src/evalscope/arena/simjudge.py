"""The simulated judge in-process: a :class:`~evalscope.eval.models.base.Model` that answers with the
simulator's judge policy (``sim/judge.py``) without HTTP. For statistics at scale (the coverage benchmark,
property tests), where thousands of runs through a server would measure the server, not the statistics.
The end-to-end path (``evalscope arena`` without ``--judge-api-url``) uses the real simulator server.
"""

from __future__ import annotations

import asyncio
from typing import Any

from evalscope.eval.models.base import Capabilities, Generation, ModelStats
from evalscope.sim.judge import JudgeTruth, judge_text
from evalscope.tokens import count_tokens


class LocalSimJudge:
    """Judge verdicts from ``truth`` (seeded by ``seed``), optionally after ``latency_s``; counts requests."""

    endpoint_id = "local-sim-judge"

    def __init__(
        self, truth: JudgeTruth, seed: int = 0, latency_s: float = 0.0, name: str = "sim-judge"
    ) -> None:
        self.truth = truth
        self.seed = seed
        self.latency_s = latency_s
        self._name = name
        self.sent = 0
        self.request_ids: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=False)

    async def start(self, check: bool = True, check_model: bool = True) -> None:
        return None

    async def generate(
        self, messages: list[dict[str, Any]], params: dict[str, Any], request_id: str, repeat: int = 0
    ) -> Generation:
        self.sent += 1
        self.request_ids.append(request_id)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        prompt = str(messages[-1]["content"])
        text = judge_text(self.truth, self.seed, prompt, params)
        return Generation(
            text=text,
            raw_text=text,
            finish_reason="stop",
            prompt_tokens=count_tokens(prompt),
            completion_tokens=count_tokens(text),
            latency_s=self.latency_s,
            attempts=1,
        )

    def stats(self) -> ModelStats:
        return ModelStats(sent=self.sent)

    async def aclose(self) -> None:
        return None
