"""Options that would do nothing are refused (issue 11 item 7): a judge for benchmarks scored by rule; judge
strategies are validated and kept (issue 14: general_qa honours them)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from evalscope.errors import ConfigError
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Sample, ScoreResult
from evalscope.eval.config import build_config, load_task_config
from evalscope.eval.runner import EvalRunner

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"  # as tests/conftest.py


@pytest.fixture(autouse=True)
def _needs_data(shared_datasets: Path) -> None:
    """Skip (with the reason) when the real benchmark files are absent."""


class _Judged(Benchmark):
    name = "toy_judged_options"
    uses_judge: ClassVar[bool] = True

    def load(self) -> list[Sample]:
        return [Sample(id="a", messages=[{"role": "user", "content": "x"}], gold="A")]

    def score(self, sample: Sample, output: str) -> ScoreResult:
        return ScoreResult(0.0, None, False)


if "toy_judged_options" not in BENCHMARKS:
    BENCHMARKS.add("toy_judged_options", _Judged)


def test_judge_model_for_rule_scored_benchmarks_is_refused(tmp_path: Path) -> None:
    cfg = build_config(
        {"datasets": ["gsm8k"], "judge_model": "j", "dataset_dir": str(DATA), "work_dir": str(tmp_path)}
    )
    with pytest.raises(ConfigError, match=r"--judge-model: none of the benchmarks gsm8k is judge-scored"):
        EvalRunner(cfg).prepare()
    assert not any(tmp_path.iterdir())  # refused before any run directory or request


def test_judge_key_alone_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as exc:
        build_config({"datasets": ["arc"], "judge_api_key": "sk-canary-judge-123"})
    assert "--judge-model" in str(exc.value) and "sk-canary" not in str(exc.value)


def test_judged_benchmark_needs_a_judge_and_accepts_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scored by a judge model"):
        EvalRunner(build_config({"datasets": ["toy_judged_options"], "work_dir": str(tmp_path)})).prepare()
    runner = EvalRunner(
        build_config({"datasets": ["toy_judged_options"], "judge_model": "j", "work_dir": str(tmp_path)})
    )
    runner.prepare()
    assert runner.tasks[0].fingerprint["judge"]["model"] == "j"


def test_cli_judge_model_exit_2_one_line(tmp_path: Path) -> None:
    from evalscope.cli.eval import eval_cmd

    r = CliRunner().invoke(
        eval_cmd,
        ["--datasets", "arc", "--dataset-dir", str(DATA), "--judge-model", "j", "--work-dir", str(tmp_path)],
    )
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "judge-scored" in lines[0], r.output


@pytest.mark.parametrize("strategy", ["llm", "llm_recall", "auto", "rule"])
def test_judge_strategy_is_kept(strategy: str) -> None:
    cfg = load_task_config({"datasets": ["arc"], "judge_strategy": strategy})
    assert cfg.judge_strategy == strategy


def test_unknown_judge_strategy_is_refused() -> None:
    with pytest.raises(ConfigError, match="judge_strategy 'gpt' is unknown"):
        load_task_config({"datasets": ["arc"], "judge_strategy": "gpt"})


def test_llm_strategy_needs_a_judge(tmp_path: Path) -> None:
    cfg = build_config(
        {"datasets": ["general_qa"], "judge_strategy": "llm", "work_dir": str(tmp_path), "dataset_dir": str(DATA)}
    )
    with pytest.raises(ConfigError, match="--judge-strategy llm needs a judge"):
        EvalRunner(cfg).prepare()
