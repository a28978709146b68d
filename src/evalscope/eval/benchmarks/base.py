"""The contract between the eval runner and one benchmark module.

A benchmark loads samples (stable ids, chat messages, gold answer), scores one raw model output, and names its
version (bumped whenever prompt or extraction changes; part of the resume fingerprint). Registered by the
name users type: ``@BENCHMARKS.register("gsm8k")``.

A benchmark is composed of three parts, each with its own declared version (as an inspect task is dataset +
solver + scorer):

- a :class:`Loader` reads the files into :class:`Record` items (ids, question, choices, gold, few-shot pool);
- a :class:`PromptTemplate` turns one record into chat messages (a :class:`Sample`);
- a :class:`Scorer` extracts and compares the answer: rule-based, or a :class:`JudgeScorer`, which declares
  that it needs a judge model and receives it as an argument, or an :class:`ExecScorer`, which runs a program
  built from the answer in the benchmark's sandbox (HumanEval, MBPP).

A benchmark that sets ``loader``, ``prompt`` and ``scorer`` gets :meth:`Benchmark.load` and
:meth:`Benchmark.score` from them; the parts' versions join its fingerprint. Older plugins that override
``load`` / ``score`` directly keep working.
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


@dataclass(slots=True)
class Record:
    """One dataset item as a :class:`Loader` read it, before any prompt: what the prompt template renders."""

    id: str
    question: str
    gold: Any
    subset: str = "default"
    category: str | None = None
    #: option texts of a multiple-choice item (``None`` for open answers)
    choices: list[str] | None = None
    #: solved examples for this item, in the shape the prompt template expects
    shots: Sequence[Any] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    #: text put before the instruction (MMLU's "The following is a question about ...")
    preamble: str | None = None


class Part:
    """A versioned part of a benchmark. ``version`` is bumped whenever the part's output changes for the same
    input (the run fingerprint holds ``name@version`` of each part, so ``--resume`` notices)."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"

    def ident(self) -> str:
        return f"{self.name or type(self).__name__}@{self.version}"


class Loader(Part, ABC):
    """Reads a benchmark's files (below ``bench.dataset_dir``, honouring its args, subsets and shot count)."""

    @abstractmethod
    def load(self, bench: Benchmark) -> list[Record]: ...

    def data_files(self, bench: Benchmark) -> list[Path]:
        """Files the records came from; their hash is part of the fingerprint."""
        return []


class PromptTemplate(Part, ABC):
    """Turns one record into the chat messages sent to the model."""

    @abstractmethod
    def render(self, record: Record, bench: Benchmark) -> Sample: ...


class Scorer(Part, ABC):
    """Rule-based scoring of one output (reasoning already removed) against the sample's gold."""

    needs_judge: ClassVar[bool] = False

    @abstractmethod
    def score(self, sample: Sample, output: str) -> ScoreResult: ...


class JudgeScorer(Part, ABC):
    """Scoring by a judge model, handed in by the runner (``--judge-model``); declares ``needs_judge``."""

    needs_judge: ClassVar[bool] = True

    @abstractmethod
    async def ascore(self, sample: Sample, output: str, judge: Model) -> ScoreResult: ...


class ExecScorer(Part, ABC):
    """Scoring by running a program built from the output (code benchmarks): async, and handed the benchmark,
    whose sandbox and per-program timeout it uses."""

    needs_judge: ClassVar[bool] = False

    @abstractmethod
    async def ascore(self, sample: Sample, output: str, bench: Any) -> ScoreResult: ...


class Benchmark(ABC):
    """Base class; subclasses set the class attributes and either the three parts (``loader``, ``prompt``,
    ``scorer``) or implement :meth:`load` and :meth:`score` themselves."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    metric: ClassVar[str] = "accuracy"
    default_shots: ClassVar[int] = 0
    #: Subsets the benchmark knows; ``subset_list`` in --dataset-args selects among them.
    subsets: ClassVar[Sequence[str]] = ("default",)
    #: Where the files live below ``--dataset-dir`` (laid out like ../shared/datasets).
    data_subdir: ClassVar[str] = ""
    needs_code_execution: ClassVar[bool] = False
    #: Scored by a judge model (from --judge-model, passed to :meth:`ajudge`), e.g. truthful_qa_gen.
    uses_judge: ClassVar[bool] = False
    #: Generation defaults merged under the user's --generation-config.
    default_generation: ClassVar[dict[str, Any]] = {}
    #: The parts (see the module docstring); ``None`` where the subclass implements the method itself.
    loader: ClassVar[Loader | None] = None
    prompt: ClassVar[PromptTemplate | None] = None
    scorer: ClassVar[Scorer | JudgeScorer | ExecScorer | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.scorer is not None:
            cls.uses_judge = cls.scorer.needs_judge

    def __init__(self, dataset_dir: Path | None = None, args: dict[str, Any] | None = None) -> None:
        self.dataset_dir = dataset_dir
        self.args: dict[str, Any] = dict(args or {})
        self.few_shot_num: int = int(self.args.get("few_shot_num", self.default_shots))
        sl = self.args.get("subset_list")
        self.subset_list: list[str] = list(sl) if sl else list(self.subsets)

    def load(self) -> list[Sample]:
        """Read the evaluation split (and few-shot pool) and build the prompts (default: loader + prompt)."""
        if self.loader is None or self.prompt is None:
            raise NotImplementedError(
                f"{type(self).__name__} sets no loader/prompt and does not override load"
            )
        return [self.prompt.render(r, self) for r in self.loader.load(self)]

    def score(self, sample: Sample, output: str) -> ScoreResult:
        """Extract the answer from one output (reasoning already removed) and compare it to the gold."""
        if not isinstance(self.scorer, Scorer):
            raise NotImplementedError(
                f"{type(self).__name__} has no rule-based scorer and does not override score"
            )
        return self.scorer.score(sample, output)

    def parts(self) -> dict[str, str]:
        """``name@version`` of each declared part (empty for a benchmark that declares none)."""
        out: dict[str, str] = {}
        for role in ("loader", "prompt", "scorer"):
            part = getattr(self, role)
            if part is not None:
                out[role] = part.ident()
        return out

    async def ascore(self, sample: Sample, output: str) -> ScoreResult:
        """Async scoring: an :class:`ExecScorer` runs a program (code benchmarks); otherwise :meth:`score`."""
        if isinstance(self.scorer, ExecScorer):
            return await self.scorer.ascore(sample, output, self)
        return self.score(sample, output)

    async def ajudge(self, sample: Sample, output: str, judge: Model) -> ScoreResult:
        """Scoring by a judge model, for benchmarks with ``uses_judge``: the runner passes the judge in."""
        if isinstance(self.scorer, JudgeScorer):
            return await self.scorer.ascore(sample, output, judge)
        raise NotImplementedError(f"{type(self).__name__} sets uses_judge but does not implement ajudge")

    def reference_output(self, sample: Sample, style: int = 0) -> str:
        """A correct reply to ``sample`` in one of several real-model styles (for tests and the simulator)."""
        raise NotImplementedError(f"{type(self).__name__} does not render reference outputs")

    def wrong_output(self, sample: Sample, style: int = 0) -> str:
        """A wrong reply to ``sample`` in one of several real-model styles (for tests and the simulator)."""
        raise NotImplementedError(f"{type(self).__name__} does not render wrong outputs")

    def data_files(self) -> list[Path]:
        """Files the samples came from; their hash is part of the fingerprint."""
        return [] if self.loader is None else self.loader.data_files(self)

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
