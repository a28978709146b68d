"""``trace``: replay a mooncake-style request trace (JSONL) at its recorded times.

Each line is one request: ``timestamp`` (ms since the trace's start), ``input_length`` and ``output_length``
(tokens) and optionally ``hash_ids``, the ids of the prompt's blocks of ``--trace-block-size`` tokens (512 in
the Mooncake traces); requests that share a leading run of block ids share that prompt prefix. So that the
server sees those shared prefixes, one block id always becomes the same text: ``block_size`` random words,
drawn when a prompt (in trace order) first lists the block from one generator seeded by ``--seed``. A prompt
is its blocks in order, cut to ``input_length``; a partial last block, and tokens past the listed blocks,
are text of the request's own. ``output_length`` is the request's ``max_tokens``.

Rows are validated when the dataset is built (one line naming the file and line on a bad row) and kept in
timestamp order; :attr:`TraceDataset.timestamps_ms` is what the schedule replays (perf/shapes.py). Traces up
to :data:`EAGER_TOKENS` prompt tokens are built when the dataset is (so nothing is generated at a send
time, where it would show as send lateness); bigger ones are built prompt by prompt, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from evalscope.errors import DatasetError
from evalscope.perf.datasets.base import DatasetOptions, PerfDataset, Prompt
from evalscope.perf.datasets.files import _jsonl, _read_text

if TYPE_CHECKING:
    from evalscope.perf.tokenizer import Tokenizer

#: Traces with at most this many prompt tokens in all are built up front (~6 bytes a token with the word
#: counter); bigger ones build each prompt when it is sent (about 0.05 ms per new block of 512 tokens).
EAGER_TOKENS = 8_000_000


def _int_field(path: Path, lineno: int, row: dict[str, Any], name: str, lo: int) -> int:
    v = row.get(name)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise DatasetError(
            f"{path}:{lineno}: {name!r} must be an integer >= {lo}, got {v!r}",
            'trace rows look like {"timestamp": 0, "input_length": 700, "output_length": 20, '
            '"hash_ids": [0, 1]}',
        )
    return v


class TraceDataset(PerfDataset):
    """A mooncake-style JSONL trace: requests with their send times, lengths and shared blocks."""

    needs_path: ClassVar[bool] = True

    def __init__(self, config: DatasetOptions, tokenizer: Tokenizer) -> None:
        super().__init__(config, tokenizer)
        if config.dataset_path is None:
            raise DatasetError("--dataset trace needs --dataset-path FILE (mooncake-style JSONL)")
        self.path = Path(config.dataset_path)
        text = _read_text(self.path)
        rows: list[tuple[float, int, int, tuple[int, ...]]] = []
        for lineno, row in _jsonl(self.path, text):
            if not isinstance(row, dict):
                raise DatasetError(f"{self.path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            ts = row.get("timestamp")
            if isinstance(ts, bool) or not isinstance(ts, int | float) or ts < 0:
                raise DatasetError(
                    f"{self.path}:{lineno}: 'timestamp' must be a number of ms >= 0, got {ts!r}"
                )
            n_in = _int_field(self.path, lineno, row, "input_length", 1)
            n_out = _int_field(self.path, lineno, row, "output_length", 1)
            ids = row.get("hash_ids", [])
            if not isinstance(ids, list) or any(isinstance(h, bool) or not isinstance(h, int) for h in ids):
                raise DatasetError(f"{self.path}:{lineno}: 'hash_ids' must be a list of integers")
            rows.append((float(ts), n_in, n_out, tuple(ids)))
        if not rows:
            raise DatasetError(f"dataset file {str(self.path)!r} has no requests")
        rows.sort(key=lambda r: r[0])  # stable: equal times keep file order
        self.rows = rows
        self.timestamps_ms: list[float] = [r[0] for r in rows]
        self.block = config.trace_block_size
        self._blocks: dict[int, str] = {}
        # One generator, used in trace order: a block's text is drawn when a prompt first lists it, so the
        # texts do not depend on how many cores share the trace (every core builds every prompt in order).
        self._rng = np.random.default_rng(config.seed)
        seen: set[int] = set()
        self._repeated = 0
        for _, n_in, _, ids in rows:
            for h in ids[: n_in // self.block]:
                if h in seen:
                    self._repeated += self.block
                seen.add(h)
        total = sum(r[1] for r in rows)
        # Small enough: build every prompt now, so that building one costs nothing at its send time.
        self._texts: list[str] | None = None
        if total <= EAGER_TOKENS:
            self._texts = [self._build(i) for i in range(len(rows))]
            self._blocks.clear()

    def _block_text(self, hid: int) -> str:
        text = self._blocks.get(hid)
        if text is None:
            text = self.tokenizer.random_text(self.block, self._rng)
            self._blocks[hid] = text
        return text

    def _build(self, index: int) -> str:
        _, n_in, _, ids = self.rows[index]
        b = self.block
        full = n_in // b
        parts = [self._block_text(h) for h in ids[:full]]
        rest = n_in - len(parts) * b
        if rest > 0:  # a partial last block, or tokens past the listed blocks: this request's own text
            parts.append(self.tokenizer.random_text(rest, self._rng))
        return " ".join(parts)

    def prompts(self) -> Iterator[Prompt]:
        rows = self.rows
        texts = self._texts
        while True:
            for i, (_, n_in, n_out, _) in enumerate(rows):
                text = texts[i] if texts is not None else self._build(i)
                yield Prompt(prompt=text, max_tokens=n_out, prompt_tokens=n_in)
            if texts is None:
                self._rng = np.random.default_rng(self.config.seed)  # a second pass repeats the first
                self._blocks.clear()

    def describe(self) -> dict[str, Any]:
        span = self.timestamps_ms[-1] - self.timestamps_ms[0]
        return {
            "path": str(self.path),
            "requests": len(self.rows),
            "span_s": span / 1e3,
            "block_size": self.block,
            "blocks": len({h for r in self.rows for h in r[3]}),
            "input_tokens": sum(r[1] for r in self.rows),
            "output_tokens": sum(r[2] for r in self.rows),
            # tokens of blocks an earlier request of the trace also lists (a prefix cache's best case)
            "repeated_block_tokens": self._repeated,
            "prebuilt": self._texts is not None,
        }
