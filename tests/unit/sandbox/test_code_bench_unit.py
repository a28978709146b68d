"""HumanEval / MBPP benchmark classes on small synthetic files: the opt-in, loading, scoring, aggregation."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from evalscope.errors import ConfigError, DatasetError, SandboxUnavailableError
from evalscope.eval.benchmarks.base import BENCHMARKS, Sample, ScoreResult
from evalscope.eval.benchmarks.humaneval import HumanEval, build_sandbox, require_code_execution
from evalscope.eval.benchmarks.mbpp import MBPP
from evalscope.eval.scoring.passk import pass_at_k

ALLOW = {"allow_code_execution": True}

HE_ROWS = [
    {
        "task_id": "HumanEval/0",
        "prompt": 'def add(a, b):\n    """Return a + b."""\n',
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
        "entry_point": "add",
    },
    {
        "task_id": "HumanEval/1",
        "prompt": 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum."""\n',
        "canonical_solution": "    return sum(xs)\n",
        "test": "def check(candidate):\n    assert candidate([1, 2]) == 3\n",
        "entry_point": "total",
    },
]


def make_humaneval(root: Path) -> Path:
    (root / "humaneval").mkdir(parents=True)
    data = "".join(json.dumps(r) + "\n" for r in HE_ROWS).encode()
    (root / "humaneval" / "HumanEval.jsonl.gz").write_bytes(gzip.compress(data))
    return root


def make_mbpp(root: Path) -> Path:
    (root / "mbpp").mkdir(parents=True)
    rows = []
    for tid in (2, 3, 4, 11, 12, 600):
        rows.append(
            {
                "task_id": tid,
                "text": f"Write a function f{tid} that doubles.",
                "code": f"def f{tid}(x):\r\n  return 2 * x",
                "test_list": [f"assert f{tid}(2) == 4", f"assert f{tid}(0) == 0"],
                "test_setup_code": "",
                "challenge_test_list": [],
            }
        )
    (root / "mbpp" / "mbpp.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    san = [
        {
            "source_file": "x",
            "task_id": tid,
            "prompt": f"Double f{tid}.",
            "code": f"def f{tid}(x):\n    return math.floor(2 * x)",
            "test_imports": ["import math"],
            "test_list": [f"assert f{tid}(2) == 4"],
        }
        for tid in (2, 11)
    ]
    (root / "mbpp" / "sanitized-mbpp.json").write_text(json.dumps(san))
    return root


@pytest.mark.parametrize("cls", [HumanEval, MBPP])
def test_refuses_without_opt_in(cls: type[HumanEval], tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        cls(tmp_path, {})
    assert "--allow-code-execution" in ei.value.one_line()
    assert "model-generated code" in ei.value.message
    with pytest.raises(ConfigError):
        cls(tmp_path, {"allow_code_execution": "false"})
    with pytest.raises(ConfigError):
        cls.check_allowed({})
    cls.check_allowed(ALLOW)
    assert cls.needs_code_execution is True


def test_registered_names() -> None:
    assert BENCHMARKS.get("humaneval") is HumanEval
    assert BENCHMARKS.get("mbpp") is MBPP


def test_require_code_execution_truthy_strings() -> None:
    require_code_execution("x", {"allow_code_execution": "true"})
    with pytest.raises(ConfigError):
        require_code_execution("x", {"allow_code_execution": 0})


def test_build_sandbox_from_args() -> None:
    sb = build_sandbox({"timeout": 3, "allow_unisolated": True, "sandbox_parallel": 3, "memory_mb": 512})
    assert sb.allow_unisolated and sb.max_parallel == 3 and sb.limits.memory_mb == 512
    assert build_sandbox({}).allow_unisolated is False
    with pytest.raises(ConfigError):
        build_sandbox({"timeout": 0})


def test_humaneval_load(tmp_path: Path) -> None:
    b = HumanEval(make_humaneval(tmp_path), ALLOW)
    samples = b.load()
    assert [s.id for s in samples] == ["HumanEval/0", "HumanEval/1"]
    assert "def add(a, b):" in samples[0].messages[0]["content"]
    assert b.data_files()[0].name == "HumanEval.jsonl.gz"
    with pytest.raises(DatasetError):
        HumanEval(tmp_path / "nowhere", ALLOW).load()


def test_mbpp_load_variants_and_shots(tmp_path: Path) -> None:
    root = make_mbpp(tmp_path)
    b = MBPP(root, ALLOW)
    samples = b.load()
    assert [s.id for s in samples] == ["11", "12"]  # test split 11-510
    content = samples[0].messages[0]["content"]
    for shot in ("f2", "f3", "f4"):
        assert f"def {shot}(x):" in content
    assert content.count("Your code should pass these tests") == 4
    assert samples[0].meta["entry_point"] == "f11"
    assert len(MBPP(root, {**ALLOW, "few_shot_num": 0}).load()[0].messages[0]["content"]) < len(content)
    assert [s.id for s in MBPP(root, {**ALLOW, "split": "prompt"}).load()] == ["2", "3", "4"]
    san = MBPP(root, {**ALLOW, "variant": "sanitized"}).load()
    assert [s.id for s in san] == ["11"] and san[0].gold["imports"] == ["import math"]
    with pytest.raises(ConfigError):
        MBPP(root, {**ALLOW, "variant": "nope"})
    with pytest.raises(ConfigError):
        MBPP(root, {**ALLOW, "split": "nope"})


async def _score_all(b: Any, outputs: list[tuple[Sample, str]]) -> list[ScoreResult]:
    try:
        await b.sandbox.start()
    except SandboxUnavailableError as e:
        pytest.skip(e.one_line())
    return [await b.ascore(s, o) for s, o in outputs]


async def test_humaneval_scoring_round_trip(tmp_path: Path) -> None:
    b = HumanEval(make_humaneval(tmp_path), ALLOW)
    samples = b.load()
    outs = [(s, b.reference_output(s, i)) for s in samples for i in range(3)]
    outs += [(s, b.wrong_output(s)) for s in samples]
    res = await _score_all(b, outs)
    b.timeout_s = 1.0  # only for the endless loop: a loaded machine may take longer than 1 s to start a program
    res += await _score_all(b, [(samples[0], "```python\ndef add(a, b):\n    while True:\n        pass\n```")])
    statuses = [r.status for r in res]
    assert statuses == ["passed"] * 6 + ["failed"] * 2 + ["timeout"]
    assert all(r.value == (1.0 if r.status == "passed" else 0.0) for r in res)


async def test_mbpp_scoring_round_trip(tmp_path: Path) -> None:
    root = make_mbpp(tmp_path)
    for args in (ALLOW, {**ALLOW, "variant": "sanitized"}):
        b = MBPP(root, args)
        samples = b.load()
        outs = [(s, b.reference_output(s, i)) for s in samples for i in range(3)]
        outs += [(s, b.wrong_output(s)) for s in samples]
        res = await _score_all(b, outs)
        n = len(samples)
        assert [r.status for r in res] == ["passed"] * (3 * n) + ["failed"] * n


def test_sync_score(tmp_path: Path) -> None:
    b = HumanEval(make_humaneval(tmp_path), ALLOW)
    s = b.load()[0]
    try:
        r = b.score(s, b.reference_output(s))
    except SandboxUnavailableError as e:
        pytest.skip(e.one_line())
    assert r.status == "passed"


def _res(status: str) -> ScoreResult:
    return ScoreResult(value=1.0 if status == "passed" else 0.0, status=status)


def test_aggregate_pass_at_k_and_sandbox_errors(tmp_path: Path) -> None:
    b = HumanEval(tmp_path, {**ALLOW, "k_list": [1, 2, 5, 10]})
    a, c, d = (Sample(id=i, messages=[], gold=None) for i in ("A", "C", "D"))
    results: list[tuple[Sample, int, ScoreResult]] = []
    # A: 5 attempts, 2 passed, 1 timeout, 2 failed
    for rep, st in enumerate(["passed", "failed", "timeout", "passed", "failed"]):
        results.append((a, rep, _res(st)))
    # C: 5 attempts, one sandbox error (excluded from n): n = 4, c = 1
    for rep, st in enumerate(["sandbox_error", "passed", "failed", "failed", "failed"]):
        results.append((c, rep, _res(st)))
    # D: only sandbox errors: not scored at all
    results.append((d, 0, _res("sandbox_error")))
    agg = b.aggregate(results)
    assert agg["counts"] == {"passed": 3, "failed": 5, "timeout": 1, "sandbox_error": 2}
    assert agg["problems_without_result"] == ["D"]
    assert agg["num_problems"] == 3 and agg["num_scored_problems"] == 2
    want1 = (pass_at_k(5, 2, 1) + pass_at_k(4, 1, 1)) / 2
    assert agg["score"] == pytest.approx(want1)
    assert agg["pass_at_k"]["pass@1"] == pytest.approx(want1)
    assert agg["pass_at_k"]["pass@2"] == pytest.approx((pass_at_k(5, 2, 2) + pass_at_k(4, 1, 2)) / 2)
    assert "pass@5" not in agg["pass_at_k"]  # problem C has only 4 counted attempts
    assert "pass@10" not in agg["pass_at_k"]
    per = {p["id"]: p for p in agg["per_problem"]}
    assert (per["A"]["n"], per["A"]["passed"], per["A"]["timeout"]) == (5, 2, 1)
    assert (per["C"]["n"], per["C"]["sandbox_error"]) == (4, 1)


def test_aggregate_maps_oom_and_output_limit_to_failed(tmp_path: Path) -> None:
    b = MBPP(tmp_path, ALLOW)
    s = Sample(id="11", messages=[], gold=None)
    agg = b.aggregate([(s, 0, _res("oom")), (s, 1, _res("output_limit")), (s, 2, _res("passed"))])
    assert agg["counts"]["failed"] == 2 and agg["counts"]["passed"] == 1
    assert agg["score"] == pytest.approx(1 / 3)
