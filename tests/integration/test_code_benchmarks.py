"""The real HumanEval / MBPP files through the sandbox: every reference solution passes its own tests, a body of
``pass`` fails, and the aggregation reports pass@1 = 1 with no sandbox errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from evalscope.errors import SandboxUnavailableError
from evalscope.eval.benchmarks.base import Sample, ScoreResult
from evalscope.eval.benchmarks.humaneval import HumanEval
from evalscope.eval.benchmarks.mbpp import MBPP

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

# Generous per-program timeout: a few MBPP references take seconds, and CI machines are shared.
ARGS: dict[str, Any] = {"allow_code_execution": True, "timeout": 60}


async def _run(
    bench: Any, samples: list[Sample], wrong: bool = False
) -> list[tuple[Sample, int, ScoreResult]]:
    try:
        await bench.sandbox.start()
    except SandboxUnavailableError as e:
        pytest.skip(f"sandbox unavailable: {e.one_line()}")

    async def one(i: int, s: Sample) -> tuple[Sample, int, ScoreResult]:
        out = bench.wrong_output(s) if wrong else bench.reference_output(s, i)  # styles rotate
        return s, 0, await bench.ascore(s, out)

    return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(samples))))


def _report(name: str, results: list[tuple[Sample, int, ScoreResult]], t0: float) -> None:
    bad = [
        (s.id, r.status, r.detail.get("stderr_tail", "")[-300:])
        for s, _, r in results
        if r.status != "passed"
    ]
    print(f"{name}: {len(results)} programs in {time.monotonic() - t0:.1f}s; not passed: {len(bad)}")
    assert not bad, bad[:5]


async def test_humaneval_canonical_solutions_all_pass(shared_datasets: Path) -> None:
    bench = HumanEval(shared_datasets, ARGS)
    samples = bench.load()
    assert len(samples) == 164
    t0 = time.monotonic()
    results = await _run(bench, samples)
    _report("humaneval", results, t0)
    agg = bench.aggregate(results)
    assert agg["score"] == 1.0 and agg["counts"]["passed"] == 164 and agg["counts"]["sandbox_error"] == 0


async def test_humaneval_pass_body_fails(shared_datasets: Path) -> None:
    bench = HumanEval(shared_datasets, {**ARGS, "timeout": 20})
    samples = bench.load()
    results = await _run(bench, samples, wrong=True)
    statuses = {r.status for _, _, r in results}
    assert statuses <= {"failed", "timeout"}, statuses
    agg = bench.aggregate(results)
    assert agg["score"] == 0.0 and agg["counts"]["sandbox_error"] == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"variant": "full", "split": "test"}, 500),
        ({"variant": "full", "split": "prompt"}, 10),
        ({"variant": "sanitized", "split": "all"}, 427),
    ],
    ids=["full-11-510", "full-prompt-1-10", "sanitized-all"],
)
async def test_mbpp_reference_solutions_all_pass(
    shared_datasets: Path, args: dict[str, Any], expected: int
) -> None:
    bench = MBPP(shared_datasets, {**ARGS, **args})
    samples = bench.load()
    assert len(samples) == expected
    t0 = time.monotonic()
    results = await _run(bench, samples)
    _report(f"mbpp {args}", results, t0)
    assert bench.aggregate(results)["score"] == 1.0


async def test_mbpp_pass_body_fails(shared_datasets: Path) -> None:
    bench = MBPP(shared_datasets, {**ARGS, "timeout": 20})
    samples = bench.load()[:100]
    results = await _run(bench, samples, wrong=True)
    assert {r.status for _, _, r in results} <= {"failed", "timeout"}
    assert bench.aggregate(results)["score"] == 0.0


def test_mbpp_shots_are_tasks_2_to_4(shared_datasets: Path) -> None:
    bench = MBPP(shared_datasets, ARGS)
    first = bench.load()[0]
    assert first.id == "11"
    content = first.messages[0]["content"]
    assert "def similar_elements" in content  # task 2
    assert "def is_not_prime" in content  # task 3
    assert "def heap_queue_largest" in content  # task 4
