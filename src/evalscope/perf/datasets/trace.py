"""``trace``: replay a mooncake-style request trace (JSONL) at its recorded times.

Each line is one request: ``timestamp`` (ms since the trace's start), ``input_length`` and ``output_length``
(tokens) and optionally ``hash_ids``, the ids of the prompt's blocks of ``--trace-block-size`` tokens (512 in
the Mooncake traces); requests that share a leading run of block ids share that prompt prefix. So that the
server sees those shared prefixes, one block id always becomes the same text: ``block_size`` random words
drawn from a generator seeded by (``--seed``, block id). A prompt is its blocks in order, cut to
``input_length``; a partial last block is its own text, and tokens past the listed blocks are unique to the
request. ``output_length`` is the request's ``max_tokens``.

Rows are validated when the dataset is built (one line naming the file and line on a bad row) and kept in
timestamp order; :attr:`TraceDataset.timestamps_ms` is what the schedule replays (perf/shapes.py). Prompt
texts are built lazily from cached block texts, so building one at its send time is a join of a few strings.
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
        self._shared_tokens = 0
        self._built = 0
        self._seen: set[int] = set()

    def _block_text(self, hid: int) -> str:
        text = self._blocks.get(hid)
        if text is None:
            rng = np.random.default_rng([self.config.seed, hid & 0xFFFFFFFF, hid >> 32 & 0xFFFFFFFF])
            text = self.tokenizer.random_text(self.block, rng)
            self._blocks[hid] = text
        return text

    def prompt_text(self, index: int) -> str:
        """The prompt of request ``index`` (see the module docstring for how blocks become text)."""
        _, n_in, _, ids = self.rows[index]
        b = self.block
        full, part = divmod(n_in, b)
        parts = [self._block_text(h) for h in ids[:full]]
        covered = len(parts) * b
        seen = self._seen
        for h in ids[:full]:
            if h in seen:
                self._shared_tokens += b
            else:
                seen.add(h)
        rest = n_in - covered
        if rest > 0:
            tail_id = ids[full] if part and len(ids) > full and covered == full * b else None
            seed = (
                [self.config.seed, 1 << 31, index]
                if tail_id is None
                else [self.config.seed, 1 << 30, tail_id & 0xFFFFFFFF, rest]
            )
            parts.append(self.tokenizer.random_text(rest, np.random.default_rng(seed)))
        return " ".join(parts)

    def prompts(self) -> Iterator[Prompt]:
        rows = self.rows
        while True:
            for i, (_, n_in, n_out, _) in enumerate(rows):
                self._built += 1
                yield Prompt(prompt=self.prompt_text(i), max_tokens=n_out, prompt_tokens=n_in)

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
            # blocks already sent by an earlier prompt of this run: what a prefix cache could reuse at best
            "repeated_block_tokens": self._shared_tokens,
        }
