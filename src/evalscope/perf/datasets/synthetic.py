"""``random``: synthetic prompts of exact token lengths for the configured tokenizer.

Each prompt is an optional shared prefix (``--prefix-length`` tokens, identical for every request so prefix
caches can hit) followed by a random body whose length is drawn uniformly from
[``--min-prompt-length``, ``--max-prompt-length``] (default 128). Every prompt is re-tokenised and the achieved
lengths are reported, so a mismatch between intended and sent lengths is visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from evalscope.perf.datasets.base import DatasetOptions, PerfDataset, Prompt

if TYPE_CHECKING:
    from evalscope.perf.tokenizer import Tokenizer

DEFAULT_PROMPT_LENGTH = 128
_BATCH = 256  # prompts drawn per numpy call


class RandomDataset(PerfDataset):
    """Random words (or random token ids with a Hugging Face tokenizer) of exact lengths."""

    needs_path: ClassVar[bool] = False

    def __init__(self, config: DatasetOptions, tokenizer: Tokenizer) -> None:
        super().__init__(config, tokenizer)
        lo = config.min_prompt_length or config.max_prompt_length or DEFAULT_PROMPT_LENGTH
        hi = config.max_prompt_length or max(lo, DEFAULT_PROMPT_LENGTH)
        self.lo, self.hi = lo, max(lo, hi)
        self._rng = np.random.default_rng(config.seed)
        self.prefix = tokenizer.random_text(config.prefix_length, self._rng)
        self._n = 0
        self._len_min: int | None = None
        self._len_max = 0
        self._len_sum = 0
        self._exact = 0

    def prompts(self) -> Iterator[Prompt]:
        rng = self._rng
        tok = self.tokenizer
        prefix = self.prefix
        max_tokens = self.config.max_tokens
        prefix_len = self.config.prefix_length
        lo, hi = self.lo, self.hi
        while True:
            # drawn a batch at a time: one numpy call per batch instead of two per prompt (deterministic for a
            # seed whatever the consumer takes, as the batches follow one another in the same order)
            targets = rng.integers(lo, hi + 1, _BATCH).tolist()
            for target, body in zip(targets, tok.random_texts(targets, rng), strict=True):
                text = f"{prefix} {body}" if prefix and body else prefix or body
                n = tok.count_own(text)
                self._record(n, target + prefix_len)
                yield Prompt(prompt=text, max_tokens=max_tokens, prompt_tokens=n)

    def _record(self, n: int, target: int) -> None:
        self._n += 1
        self._len_sum += n
        self._len_max = max(self._len_max, n)
        self._len_min = n if self._len_min is None else min(self._len_min, n)
        if n == target:
            self._exact += 1

    def describe(self) -> dict[str, Any]:
        return {
            "intended_prompt_tokens": {"min": self.lo, "max": self.hi, "prefix": self.config.prefix_length},
            "achieved_prompt_tokens": {
                "generated": self._n,
                "min": self._len_min,
                "max": self._len_max,
                "mean": (self._len_sum / self._n) if self._n else None,
                "exact_fraction": (self._exact / self._n) if self._n else None,
            },
        }
