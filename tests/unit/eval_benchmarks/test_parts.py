"""Benchmarks are composed of a loader, a prompt template and a scorer, each versioned (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalscope.eval.benchmarks.base import (
    BENCHMARKS,
    Benchmark,
    JudgeScorer,
    Loader,
    PromptTemplate,
    Record,
    Sample,
    ScoreResult,
)
from evalscope.eval.models.base import Model
from evalscope.eval.runner import _ensure_registered


class _Load(Loader):
    name = "toy-load"
    version = "3"

    def load(self, bench: Benchmark) -> list[Record]:
        return [Record(f"r{i}", f"question {i}", "yes") for i in range(3)]


class _Prompt(PromptTemplate):
    name = "toy-prompt"

    def render(self, record: Record, bench: Benchmark) -> Sample:
        return Sample(record.id, [{"role": "user", "content": record.question}], record.gold)


class _Judge(JudgeScorer):
    name = "toy-judge"
    version = "2"

    async def ascore(self, sample: Sample, output: str, judge: Model) -> ScoreResult:
        return ScoreResult(1.0)


class _Composed(Benchmark):
    name = "toy_composed"
    loader = _Load()
    prompt = _Prompt()
    scorer = _Judge()


def test_parts_compose_load_and_declare_versions() -> None:
    b = _Composed()
    assert [s.id for s in b.load()] == ["r0", "r1", "r2"]
    assert b.load()[1].messages == [{"role": "user", "content": "question 1"}]
    assert b.parts() == {"loader": "toy-load@3", "prompt": "toy-prompt@1", "scorer": "toy-judge@2"}
    assert _Composed.uses_judge  # declared by the judge scorer
    with pytest.raises(NotImplementedError):
        b.score(b.load()[0], "x")  # a judge scorer has no rule-based score


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("arc", {"loader": "arc-jsonl@1", "prompt": "mcq@1", "scorer": "choice@1"}),
        ("mmlu", {"loader": "mmlu-csv@1", "prompt": "mcq@1", "scorer": "choice@1"}),
        ("gsm8k", {"loader": "gsm8k-jsonl@1", "prompt": "math@1", "scorer": "math-equiv@1"}),
        ("math_500", {"loader": "math500-jsonl@1", "prompt": "math@1", "scorer": "math-equiv@1"}),
        (
            "humaneval",
            {"loader": "humaneval-jsonl@1", "prompt": "humaneval-complete@1", "scorer": "humaneval-exec@1"},
        ),
        ("mbpp", {"loader": "mbpp-files@1", "prompt": "mbpp-inline-shots@1", "scorer": "mbpp-exec@1"}),
    ],
)
def test_builtin_benchmarks_declare_their_parts(name: str, parts: dict[str, str], tmp_path: Path) -> None:
    _ensure_registered([name])
    bench = BENCHMARKS.get(name)(tmp_path, {"allow_code_execution": True})
    assert bench.parts() == parts
    assert not bench.uses_judge
