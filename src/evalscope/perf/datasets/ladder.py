"""Fixed prompts: ``--prompt TEXT`` and upstream's ``speed_benchmark`` prompt-length ladder.

``speed_benchmark`` sends prompts of 96, 2048, 6144, 14336 and 30720 tokens in turn (``speed_benchmark_long``:
63488 and 129024), the ladder the original EvalScope uses to measure decode speed against context length;
each length is built to the exact token count of the run's tokenizer and the achieved lengths are reported.
Run it with ``--parallel 1 --number 5`` (one request per rung) and a long ``--max-tokens`` / ``--min-tokens``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from evalscope.perf.datasets.base import DatasetOptions, PerfDataset, Prompt

if TYPE_CHECKING:
    from evalscope.perf.tokenizer import Tokenizer


class FixedPromptDataset(PerfDataset):
    """The same prompt (``--prompt``) in every request."""

    needs_path: ClassVar[bool] = False

    def __init__(self, config: DatasetOptions, tokenizer: Tokenizer) -> None:
        super().__init__(config, tokenizer)
        self.text = config.prompt or ""
        self.tokens = tokenizer.count(self.text)

    def prompts(self) -> Iterator[Prompt]:
        prompt = Prompt(prompt=self.text, max_tokens=self.config.max_tokens, prompt_tokens=self.tokens)
        while True:
            yield prompt

    def describe(self) -> dict[str, Any]:
        return {"prompt_tokens": self.tokens}


class SpeedBenchmarkDataset(PerfDataset):
    """Prompts climbing a fixed ladder of lengths, cycled."""

    needs_path: ClassVar[bool] = False
    LADDER: ClassVar[tuple[int, ...]] = (96, 2048, 6144, 14336, 30720)

    def __init__(self, config: DatasetOptions, tokenizer: Tokenizer) -> None:
        super().__init__(config, tokenizer)
        rng = np.random.default_rng(config.seed)
        self.rungs: list[tuple[str, int]] = []
        for n in self.LADDER:
            text = tokenizer.random_text(n, rng)
            self.rungs.append((text, tokenizer.count(text)))

    def prompts(self) -> Iterator[Prompt]:
        max_tokens = self.config.max_tokens
        while True:
            for text, n in self.rungs:
                yield Prompt(prompt=text, max_tokens=max_tokens, prompt_tokens=n)

    def describe(self) -> dict[str, Any]:
        return {
            "ladder_intended": list(self.LADDER),
            "ladder_achieved": [n for _, n in self.rungs],
        }


class SpeedBenchmarkLongDataset(SpeedBenchmarkDataset):
    """The long rungs (64k and 128k context)."""

    LADDER: ClassVar[tuple[int, ...]] = (63488, 129024)
