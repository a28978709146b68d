"""Shared prompt, scoring and reference rendering for math benchmarks (GSM8K, MATH, MATH-500)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from evalscope.eval.benchmarks._common import BaseBenchmark, user
from evalscope.eval.benchmarks.base import (
    Benchmark,
    JudgeScorer,
    PromptTemplate,
    Record,
    Sample,
    Scorer,
    ScoreResult,
)
from evalscope.eval.scoring.extract import extract_math_answer
from evalscope.eval.scoring.math_equiv import math_equiv, parse_number

MATH_INSTRUCTION = (
    "Solve the following math problem step by step. Put your final answer within \\boxed{{}}.\n\n{problem}"
)


def math_prompt(problem: str, shots: Sequence[tuple[str, str]] = ()) -> str:
    """One user message; ``shots`` are (problem, worked solution ending in a boxed answer) pairs."""
    if not shots:
        return MATH_INSTRUCTION.format(problem=problem.strip())
    ex = "\n\n".join(f"Problem: {p.strip()}\nSolution: {s.strip()}" for p, s in shots)
    return (
        "Solve the following math problem step by step. Put your final answer within \\boxed{}.\n\n"
        f"Here are some solved examples:\n\n{ex}\n\nNow solve this problem:\n\nProblem: {problem.strip()}"
    )


def _with_commas(n: float) -> str:
    return f"{int(n):,}" if float(n).is_integer() else f"{n:,}"


N_MATH_STYLES = 8


def render_math(answer: str, style: int, decoy: str) -> str:
    """A solution whose final answer is ``answer`` in one of several real-model styles; ``decoy`` is another
    value mentioned in the reasoning (it must not be extracted)."""
    num = parse_number(answer)
    s = style % N_MATH_STYLES
    if s == 0:
        return f"Let's compute step by step.\nFirst we get {decoy}, then refine it.\n\nThe final answer is $\\boxed{{{answer}}}$."
    if s == 1:
        shown = _with_commas(num) if num is not None and abs(num) >= 1000 else answer
        return f"**Step 1.** Set up the equation.\n**Step 2.** Solve it.\n\n$$\\boxed{{{shown}}}$$"
    if s == 2:
        shown = f"{int(num)}.0" if num is not None and float(num).is_integer() else answer
        return f"Working through the algebra gives \\boxed{{{shown}}}"
    if s == 3:
        return f"<think>Maybe the answer is \\boxed{{{decoy}}}.</think>\nCareful solution...\n\\[\\boxed{{{answer}}}\\]"
    if s == 4:
        return f"We check the candidate {decoy} and reject it.\nTherefore, the answer is ${answer}$."
    if s == 5:
        return f"Reasoning omitted.\nANSWER: {answer}"
    if s == 6:
        shown = f"\\${_with_commas(num)}" if num is not None else answer
        return f"Summing up the pieces yields the total.\n\n\\fbox{{{shown}}}"
    return f"Intermediate value: \\boxed{{{decoy}}} is not final.\nFinal: \\boxed{{ {answer} }}"


def wrong_answer(gold: str) -> str:
    num = parse_number(gold)
    if num is not None:
        v = num + 1
        return str(int(v)) if float(v).is_integer() else str(v)
    inner = re.sub(r"^\\text\{(.*)\}$", r"\1", gold.strip())
    if inner != gold.strip():
        return f"\\text{{not {inner}}}"
    return f"{gold}+1"


class MathScorer(Scorer):
    """``math_equiv(extract_math_answer(output), gold)``: the boxed / final answer, compared symbolically."""

    name = "math-equiv"
    version = "1"

    def score(self, sample: Sample, output: str) -> ScoreResult:
        pred = extract_math_answer(output)
        ok = pred is not None and math_equiv(pred, str(sample.gold))
        return ScoreResult(value=1.0 if ok else 0.0, extracted=pred, parsed=pred is not None)


class MathPrompt(PromptTemplate):
    """:func:`math_prompt`; ``record.shots`` are (problem, solution) pairs, inline or as turns."""

    name = "math"
    version = "1"

    def render(self, record: Record, bench: Benchmark) -> Sample:
        assert isinstance(bench, BaseBenchmark)
        shots = list(record.shots)
        if shots and bench.shots_as_turns:
            msgs: list[dict[str, Any]] = []
            for sq, sol in shots:
                msgs += user(math_prompt(sq))
                msgs.append({"role": "assistant", "content": sol})
            msgs += user(math_prompt(record.question))
        else:
            msgs = user(math_prompt(record.question, shots))
        return Sample(
            id=record.id,
            messages=msgs,
            gold=record.gold,
            subset=record.subset,
            category=record.category,
            meta=dict(record.meta),
        )


class MathBenchmark(BaseBenchmark):
    """Gold is the reference answer string; score = ``math_equiv(extract_math_answer(output), gold)``."""

    metric: ClassVar[str] = "accuracy"
    prompt: ClassVar[PromptTemplate | None] = MathPrompt()
    scorer: ClassVar[Scorer | JudgeScorer | None] = MathScorer()

    async def ascore(self, sample: Sample, output: str) -> ScoreResult:
        # Off the event loop: math-verify may take up to its timeout in its worker process.
        return await asyncio.to_thread(self.score, sample, output)

    def reference_output(self, sample: Sample, style: int = 0) -> str:
        gold = str(sample.gold)
        return render_math(gold, style, wrong_answer(gold))

    def wrong_output(self, sample: Sample, style: int = 0) -> str:
        gold = str(sample.gold)
        return render_math(wrong_answer(gold), style, gold)
