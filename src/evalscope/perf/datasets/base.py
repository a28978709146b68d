"""The dataset plugin contract and its registry.

A dataset gets a small typed :class:`DatasetOptions` (not the whole run config): the package imports nothing
from ``perf.config``, which validates dataset names through :data:`DATASETS` one way only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from evalscope.registry import Registry

if TYPE_CHECKING:
    from evalscope.perf.tokenizer import Tokenizer


@dataclass(frozen=True, slots=True)
class DatasetOptions:
    """What a dataset may read from the run's options (same names as the ``perf`` options)."""

    dataset: str = "random"
    dataset_path: Path | None = None
    min_prompt_length: int | None = None
    max_prompt_length: int | None = None
    prefix_length: int = 0
    max_tokens: int | None = None
    seed: int = 0
    prompt: str | None = None  # --prompt TEXT (the one-prompt dataset)
    multi_turn: bool = False  # --multi-turn: yield whole conversations (Prompt.turns)
    trace_block_size: int = 512  # --dataset trace: tokens per hash_ids block

    @classmethod
    def of(cls, source: Any) -> DatasetOptions:
        """The options of any object with these attribute names (a ``PerfConfig``), or ``source`` itself."""
        if isinstance(source, cls):
            return source
        return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})


@dataclass(slots=True)
class Prompt:
    """One prompt: text (``prompt``) or chat ``messages``; optional per-row ``max_tokens``."""

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    prompt_tokens: int | None = None
    #: --multi-turn: the user turns of one conversation, sent in order as one session
    turns: list[str] | None = None


class PerfDataset:
    """Base class: subclasses set ``needs_path`` and implement :meth:`prompts`.

    The constructor must do all validation (missing / empty / malformed input raises
    :class:`evalscope.errors.DatasetError` with the line number) so that errors surface before the run.
    """

    needs_path: ClassVar[bool] = True

    def __init__(self, config: DatasetOptions, tokenizer: Tokenizer) -> None:
        self.config = DatasetOptions.of(config)
        self.tokenizer = tokenizer

    def prompts(self) -> Iterator[Prompt]:
        """An endless, lazy iterator of prompts."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """A small JSON-ready description for the summary (size, achieved lengths...)."""
        return {}


DATASETS: Registry[type[PerfDataset]] = Registry("dataset", "evalscope.datasets")
