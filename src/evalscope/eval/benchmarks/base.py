"""The contract between the eval runner and one benchmark module.

A benchmark loads samples (stable ids, chat messages, gold answer), scores one raw model output, and names its
version (bumped whenever prompt or extraction changes; part of the resume fingerprint). Registered by the
name users type: ``@BENCHMARKS.register("gsm8k")``.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from evalscope.registry import Registry

if TYPE_CHECKING:
    from evalscope.eval.models.base import Model


@dataclass(slots=True)
class Sample:
    """One benchmark item. ``id`` is stable across runs (dataset id or content hash, never a shuffled index)."""

    id: str
    messages: list[dict[str, Any]]
    gold: Any
    subset: str = "default"
    category: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ScoreResult:
    """The score of one output: ``value`` in [0, 1]; ``parsed`` False when no answer could be extracted.

    ``status`` is ``scored`` normally; code benchmarks use ``passed`` / ``failed`` / ``timeout`` /
    ``sandbox_error`` (a sandbox error is counted apart and never scored as pass or fail).
    """

    value: float
    extracted: Any = None
    parsed: bool = True
    status: str = "scored"
    detail: dict[str, Any] = field(default_factory=dict)


class Benchmark(ABC):
    """Base class; subclasses set the class attributes and implement :meth:`load` and :meth:`score`."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    metric: ClassVar[str] = "accuracy"
    default_shots: ClassVar[int] = 0
    #: Subsets the benchmark knows; ``subset_list`` in --dataset-args selects among them.
    subsets: ClassVar[Sequence[str]] = ("default",)
    #: Where the files live below ``--dataset-dir`` (laid out like ../shared/datasets).
    data_subdir: ClassVar[str] = ""
    needs_code_execution: ClassVar[bool] = False
    #: Scored by a judge model (from --judge-model, passed to :meth:`ajudge`); none of the built-in benchmarks is.
    uses_judge: ClassVar[bool] = False
    #: Generation defaults merged under the user's --generation-config.
    default_generation: ClassVar[dict[str, Any]] = {}

    def __init__(self, dataset_dir: Path | None = None, args: dict[str, Any] | None = None) -> None:
        self.dataset_dir = dataset_dir
        self.args: dict[str, Any] = dict(args or {})
        self.few_shot_num: int = int(self.args.get("few_shot_num", self.default_shots))
        sl = self.args.get("subset_list")
        self.subset_list: list[str] = list(sl) if sl else list(self.subsets)

    @abstractmethod
    def load(self) -> list[Sample]:
        """Read the evaluation split (and few-shot pool) and build the prompts."""

    @abstractmethod
    def score(self, sample: Sample, output: str) -> ScoreResult:
        """Extract the answer from one output (reasoning already removed) and compare it to the gold."""

    async def ascore(self, sample: Sample, output: str) -> ScoreResult:
        """Async scoring hook; code benchmarks override it to run programs in the sandbox."""
        return self.score(sample, output)

    async def ajudge(self, sample: Sample, output: str, judge: Model) -> ScoreResult:
        """Scoring by a judge model, for benchmarks with ``uses_judge``: the runner passes the judge in."""
        raise NotImplementedError(f"{type(self).__name__} sets uses_judge but does not implement ajudge")

    def reference_output(self, sample: Sample, style: int = 0) -> str:
        """A correct reply to ``sample`` in one of several real-model styles (for tests and the simulator)."""
        raise NotImplementedError(f"{type(self).__name__} does not render reference outputs")

    def wrong_output(self, sample: Sample, style: int = 0) -> str:
        """A wrong reply to ``sample`` in one of several real-model styles (for tests and the simulator)."""
        raise NotImplementedError(f"{type(self).__name__} does not render wrong outputs")

    def data_files(self) -> list[Path]:
        """Files the samples came from; their hash is part of the fingerprint."""
        return []

    def data_hash(self) -> str:
        """sha256 over the data files' bytes (in path order)."""
        h = hashlib.sha256()
        for p in sorted(self.data_files()):
            h.update(p.name.encode())
            h.update(p.read_bytes())
        return h.hexdigest()

    def aggregate(self, results: list[tuple[Sample, int, ScoreResult]]) -> dict[str, Any]:
        """Headline metric and per-subset scores from (sample, repeat, result) triples.

        Default: mean of ``value`` (accuracy), with subsets and categories. Code benchmarks override with pass@k.
        """
        from evalscope.eval.scoring.stats import mean_with_stderr

        by_subset: dict[str, list[float]] = {}
        by_cat: dict[str, list[float]] = {}
        values: list[float] = []
        for sample, _rep, res in results:
            values.append(res.value)
            by_subset.setdefault(sample.subset, []).append(res.value)
            if sample.category:
                by_cat.setdefault(sample.category, []).append(res.value)
        score, stderr = mean_with_stderr(values)
        return {
            "score": score,
            "stderr": stderr,
            "metric": self.metric,
            "subsets": [
                {"name": k, "score": mean_with_stderr(v)[0], "num_samples": len(v)}
                for k, v in sorted(by_subset.items())
            ],
            "categories": [
                {"name": k, "score": mean_with_stderr(v)[0], "num_samples": len(v)}
                for k, v in sorted(by_cat.items())
            ],
        }


BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark", "evalscope.benchmarks")
