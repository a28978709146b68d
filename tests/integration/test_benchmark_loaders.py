"""Every benchmark with data in ../shared/datasets loads the exact expected counts, and its gold answer scores 1
when fed back in typical real-model formats (and a wrong answer scores 0).

Skipped (with a reason) when the shared datasets folder is absent.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Sample

pytestmark = pytest.mark.integration

EXPECTED: dict[str, tuple[dict[str, Any], int, dict[str, int] | None]] = {
    "gsm8k": ({}, 1319, None),
    "arc": ({}, 3548, {"ARC-Easy": 2376, "ARC-Challenge": 1172}),
    "cmmlu": ({}, 11582, None),
    "ceval": ({}, 1346, None),
    "truthful_qa": ({}, 1634, {"MC1": 817, "MC2": 817}),
    "competition_math": ({}, 5000, None),
    "math_500": ({}, 500, {"Level 1": 43, "Level 2": 90, "Level 3": 105, "Level 4": 128, "Level 5": 134}),
    "bbh": ({}, 6511, None),
}
# How many reply styles to try on every sample (all styles are tried on the first 50 samples).
STYLES = {"gsm8k": 8, "competition_math": 3, "math_500": 8, "bbh": 5}


@pytest.fixture(scope="module")
def loaded(shared_datasets: Path) -> dict[str, tuple[Benchmark, list[Sample]]]:
    out = {}
    for name, (args, _n, _subs) in EXPECTED.items():
        b = BENCHMARKS.get(name)(shared_datasets, args)
        out[name] = (b, b.load())
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_and_stable_ids(
    name: str, loaded: dict[str, tuple[Benchmark, list[Sample]]], shared_datasets: Path
) -> None:
    bench, samples = loaded[name]
    _args, n, subsets = EXPECTED[name]
    assert len(samples) == n
    assert len({s.id for s in samples}) == n, "sample ids must be unique"
    if subsets is not None:
        assert dict(Counter(s.subset for s in samples)) == subsets
    again = BENCHMARKS.get(name)(shared_datasets, EXPECTED[name][0]).load()
    assert [s.id for s in again] == [s.id for s in samples]
    assert [s.gold for s in again] == [s.gold for s in samples]
    assert bench.data_files() and all(p.is_file() for p in bench.data_files())
    assert len(bench.data_hash()) == 64


def test_subset_structure(loaded: dict[str, tuple[Benchmark, list[Sample]]]) -> None:
    assert len({s.subset for s in loaded["bbh"][1]}) == 27
    assert len({s.subset for s in loaded["cmmlu"][1]}) == 67
    assert len({s.subset for s in loaded["ceval"][1]}) == 52
    assert {s.category for s in loaded["ceval"][1]} == {"STEM", "Social Science", "Humanities", "Other"}
    assert {s.category for s in loaded["cmmlu"][1]} == {"STEM", "Social Science", "Humanities", "Other"}
    assert len({s.category for s in loaded["math_500"][1]}) == 7


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gold_round_trip(name: str, loaded: dict[str, tuple[Benchmark, list[Sample]]]) -> None:
    bench, samples = loaded[name]
    n_styles = STYLES.get(name, 8)
    failures = []
    for i, s in enumerate(samples):
        for st in range(8 if i < 50 else n_styles):
            good = bench.reference_output(s, st)
            bad = bench.wrong_output(s, st)
            rg, rb = bench.score(s, good), bench.score(s, bad)
            if rg.value != 1.0 or rb.value != 0.0:
                failures.append((s.id, st, rg.value, rb.value))
    assert not failures, failures[:10]


def test_few_shot_prompts(shared_datasets: Path) -> None:
    g = BENCHMARKS.get("gsm8k")(shared_datasets, {"few_shot_num": 4}).load()[0]
    assert g.messages[0]["content"].count("The final answer is $\\boxed{") == 4
    c = BENCHMARKS.get("cmmlu")(shared_datasets, {"few_shot_num": 5, "subset_list": ["agronomy"]}).load()[0]
    assert c.messages[0]["content"].count("答案：") == 6  # instruction + 5 shots
    a = BENCHMARKS.get("arc")(shared_datasets, {"few_shot_num": 2, "subset_list": ["ARC-Challenge"]}).load()[
        0
    ]
    assert a.messages[0]["content"].count("ANSWER: ") == 3  # instruction + 2 shots
    b3 = BENCHMARKS.get("bbh")(shared_datasets, {"subset_list": ["navigate"]}).load()[0]
    assert b3.messages[0]["content"].count("So the answer is") == 4  # instruction + 3 exemplars
