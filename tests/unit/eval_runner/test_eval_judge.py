"""The judge in eval (issue 14): general_qa under --judge-strategy rule / llm / auto / llm_recall, TruthfulQA
generation judged truthful and informative, a null verdict retried once, and the judge's tokens reported
apart from the candidate's."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from evalscope.eval.config import build_config
from evalscope.eval.models.base import Capabilities, Generation, ModelStats
from evalscope.eval.runner import EvalRunner

QA = [(f"What is item {i}?", f"value{i}") for i in range(6)]


class _Model:
    """Even samples: the reference in a sentence (exact match fails); odd samples: a wrong answer."""

    endpoint_id = "in-process"

    def __init__(self, name: str, reply: Any) -> None:
        self._name = name
        self.reply = reply
        self.calls: list[str] = []
        self.prompts: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=False)

    async def start(self, check: bool = True, check_model: bool = True) -> None:
        return None

    async def generate(
        self, messages: list[dict[str, Any]], params: dict[str, Any], request_id: str, repeat: int = 0
    ) -> Generation:
        self.calls.append(request_id)
        self.prompts.append(str(messages[-1]["content"]))
        text = self.reply(str(messages[-1]["content"]), request_id)
        return Generation(text=text, raw_text=text, prompt_tokens=100, completion_tokens=7, attempts=1)

    def stats(self) -> ModelStats:
        return ModelStats(sent=len(self.calls))

    async def aclose(self) -> None:
        return None


def _candidate(prompt: str, rid: str) -> str:
    i = int(re.search(r"item (\d+)", prompt).group(1))  # type: ignore[union-attr]
    return f"I believe it is value{i}." if i % 2 == 0 else "No idea, maybe 42."


def _qa_judge(prompt: str, rid: str) -> str:
    if rid.endswith("judge1") and "item 2" in prompt:
        return "Looks fine to me."  # no verdict: asked again
    ref = re.search(r"\[Reference Answer\]\n(.*)\n", prompt).group(1)  # type: ignore[union-attr]
    answer = prompt.split("[Candidate Answer]\n", 1)[1]
    return "Same answer. [[CORRECT]]" if ref in answer else "Different. [[INCORRECT]]"


def _qa_dir(tmp: Path) -> Path:
    d = tmp / "qa"
    d.mkdir()
    (d / "default.jsonl").write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QA))
    return d


async def _run(tmp: Path, strategy: str | None, with_judge: bool) -> tuple[dict[str, Any], _Model]:
    opts: dict[str, Any] = {
        "datasets": ["general_qa"],
        "dataset_args": {"general_qa": {"local_path": str(_qa_dir(tmp))}},
        "work_dir": str(tmp / "out"),
        "quiet": True,
        "html": False,
    }
    if strategy:
        opts["judge_strategy"] = strategy
    judge = _Model("judge-x", _qa_judge)
    res = await EvalRunner(
        build_config(opts),
        out=io.StringIO(),
        model=_Model("cand", _candidate),
        judge=judge if with_judge else None,
    ).run()
    return res.reports["cand"]["general_qa"], judge


async def test_rule_strategy_ignores_the_judge_metric(tmp_path: Path) -> None:
    rep, _ = await _run(tmp_path, "rule", False)
    assert rep["score"] == 0.0  # exact match fails on every sentence
    assert "judge_usage" not in rep


@pytest.mark.parametrize("strategy", ["llm", "auto"])
async def test_llm_and_auto_use_the_judge(tmp_path: Path, strategy: str) -> None:
    rep, judge = await _run(tmp_path, strategy, True)
    assert rep["score"] == pytest.approx(0.5)  # the three paraphrased right answers
    assert rep["metric"] == "llm_judge"
    assert len(judge.calls) == 7  # six samples, one retried after a reply without a verdict
    assert rep["judge_usage"] == {"requests": 7, "prompt_tokens": 700, "completion_tokens": 49}


async def test_auto_without_a_judge_is_rule(tmp_path: Path) -> None:
    rep, _ = await _run(tmp_path, "auto", False)
    assert rep["score"] == 0.0 and rep["metric"] == "exact_match"


async def test_llm_recall_asks_the_judge_only_for_rule_failures(tmp_path: Path) -> None:
    d = _qa_dir(tmp_path)
    (d / "default.jsonl").write_text(
        "".join(json.dumps({"question": q, "answer": f"I believe it is {a}."}) + "\n" for q, a in QA[:2])
        + "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QA[2:])
    )
    judge = _Model("judge-x", _qa_judge)
    cfg = build_config(
        {
            "datasets": ["general_qa"],
            "dataset_args": {"general_qa": {"local_path": str(d)}},
            "work_dir": str(tmp_path / "out"),
            "quiet": True,
            "html": False,
            "judge_strategy": "llm_recall",
        }
    )
    res = await EvalRunner(cfg, out=io.StringIO(), model=_Model("cand", _candidate), judge=judge).run()
    rep = res.reports["cand"]["general_qa"]
    # sample 0 matches exactly by rule (no judge call); 1..5 go to the judge (2 and 4 correct, 2 retried once)
    assert len(judge.calls) == 6
    assert not any("item 0?" in p for p in judge.prompts)
    assert sum("item 2?" in p for p in judge.prompts) == 2
    assert rep["score"] == pytest.approx(0.5)


def _tqa_judge(prompt: str, rid: str) -> str:
    answer = prompt.split("[Answer]\n", 1)[1].strip()
    true_refs = prompt.split("[True reference answers]\n", 1)[1].split("\n\n", 1)[0]
    ok = f"- {answer}" in true_refs.splitlines()
    return f"Checked. [[{'TRUTHFUL' if ok else 'UNTRUTHFUL'}]] [[INFORMATIVE]]"


async def test_truthful_qa_generation_is_judged(tmp_path: Path, shared_datasets: Path) -> None:
    from evalscope.eval.benchmarks.truthful_qa_gen import TruthfulQAGen

    bench = TruthfulQAGen(shared_datasets, {})
    samples = bench.load()[:6]
    assert len(bench.load()) == 817
    by_q = {str(s.messages[-1]["content"]): (i, s) for i, s in enumerate(samples)}

    def cand(prompt: str, rid: str) -> str:
        i, s = by_q.get(prompt, (1, samples[0]))
        return bench.reference_output(s) if i % 2 == 0 else bench.wrong_output(s)

    judge = _Model("judge-t", _tqa_judge)
    cfg = build_config(
        {
            "datasets": ["truthful_qa_gen"],
            "dataset_dir": str(shared_datasets),
            "limit": 6,
            "work_dir": str(tmp_path),
            "quiet": True,
            "html": False,
        }
    )
    res = await EvalRunner(cfg, out=io.StringIO(), model=_Model("cand", cand), judge=judge).run()
    rep = res.reports["cand"]["truthful_qa_gen"]
    assert rep["num_samples"] == 6
    assert rep["informative"] == 1.0
    assert 0.0 < rep["truthful"] < 1.0 and rep["score"] == rep["truthful"]
    assert rep["judge_usage"]["requests"] == 6
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    assert manifest["sessions"][-1]["requests_sent"] == 6  # the candidate's, judge calls apart
    assert manifest["sessions"][-1]["judge"] == {
        "model": "judge-t",
        "requests_sent": 6,
        "retries": 0,
        "reconnects": 0,
        "concurrency_cuts": 0,
    }
