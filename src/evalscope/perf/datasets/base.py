"""The dataset plugin contract and its registry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from evalscope.registry import Registry

if TYPE_CHECKING:
    from evalscope.perf.config import PerfConfig
    from evalscope.perf.tokenizer import Tokenizer


@dataclass(slots=True)
class Prompt:
    """One prompt: text (``prompt``) or chat ``messages``; optional per-row ``max_tokens``."""

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    prompt_tokens: int | None = None


class PerfDataset:
    """Base class: subclasses set ``needs_path`` and implement :meth:`prompts`.

    The constructor must do all validation (missing / empty / malformed input raises
    :class:`evalscope.errors.DatasetError` with the line number) so that errors surface before the run.
    """

    needs_path: ClassVar[bool] = True

    def __init__(self, config: PerfConfig, tokenizer: Tokenizer) -> None:
        self.config = config
        self.tokenizer = tokenizer

    def prompts(self) -> Iterator[Prompt]:
        """An endless, lazy iterator of prompts."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """A small JSON-ready description for the summary (size, achieved lengths...)."""
        return {}


DATASETS: Registry[type[PerfDataset]] = Registry("dataset", "evalscope.datasets")
