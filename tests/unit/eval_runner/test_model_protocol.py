"""The eval runner knows models only through the ``Model`` protocol (issue 12): a model that is not an
``ApiModel`` (no client, no gate) runs a benchmark end to end, its ``stats()`` reach the manifest, and a judge
passed in explicitly reaches ``ajudge``."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from evalscope.errors import ConfigError
from evalscope.eval.benchmarks.base import (
    BENCHMARKS,
    Benchmark,
    Loader,
    PromptTemplate,
    Record,
    Sample,
    Scorer,
    ScoreResult,
)
from evalscope.eval.config import build_config
from evalscope.eval.models.api import ApiModel
from evalscope.eval.models.base import Capabilities, Generation, Model, ModelStats
from evalscope.eval.models.builtin import BuiltinSimModel
from evalscope.eval.runner import EvalRunner


class _Echo:
    """An in-process model: answers 'A' to even-numbered samples, 'B' otherwise."""

    endpoint_id = "in-process"

    def __init__(self, name: str) -> None:
        self._name = name
        self.started = 0
        self.closed = 0
        self.calls: list[str] = []
        self.in_flight = 0
        self.max_seen = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=False, logprobs=False, max_in_flight=1)

    async def start(self, check: bool = True, check_model: bool = True) -> None:
        self.started += 1

    async def generate(
        self, messages: list[dict[str, Any]], params: dict[str, Any], request_id: str, repeat: int = 0
    ) -> Generation:
        self.calls.append(request_id)
        self.in_flight += 1
        self.max_seen = max(self.max_seen, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        text = str(messages[-1]["content"])
        n = int(text.rsplit(" ", 1)[-1]) if text[-1].isdigit() else -1
        return Generation(text="A" if n % 2 == 0 else "B", raw_text="A" if n % 2 == 0 else "B", attempts=1)

    def stats(self) -> ModelStats:
        return ModelStats(sent=len(self.calls), retries=7, reconnects=3, concurrency_cuts=2)

    async def aclose(self) -> None:
        self.closed += 1


class _Toy(Benchmark):
    name = "toy_protocol"

    def load(self) -> list[Sample]:
        return [
            Sample(id=f"s{i}", messages=[{"role": "user", "content": f"q {i}"}], gold="A") for i in range(6)
        ]

    def score(self, sample: Sample, output: str) -> ScoreResult:
        return ScoreResult(1.0 if output.strip() == sample.gold else 0.0, output.strip())


class _ToyJudged(_Toy):
    name = "toy_protocol_judged"
    uses_judge = True

    async def ajudge(self, sample: Sample, output: str, judge: Model) -> ScoreResult:
        verdict = await judge.generate([{"role": "user", "content": f"{output} 0"}], {}, f"judge/{sample.id}")
        return ScoreResult(1.0 if verdict.text == "A" and output == "A" else 0.0, output)


for _cls in (_Toy, _ToyJudged):
    if _cls.name not in BENCHMARKS:
        BENCHMARKS.add(_cls.name, _cls)


def test_builtin_and_api_models_implement_the_protocol() -> None:
    assert isinstance(ApiModel("http://127.0.0.1:9/v1", "m"), Model)
    assert isinstance(BuiltinSimModel("m"), Model)
    assert isinstance(_Echo("m"), Model)


async def test_runner_runs_any_model_and_records_its_stats(tmp_path: Path) -> None:
    model = _Echo("echo-1")
    cfg = build_config({"datasets": ["toy_protocol"], "work_dir": str(tmp_path), "quiet": True})
    res = await EvalRunner(cfg, out=io.StringIO(), model=model).run()
    assert model.started == 1 and model.closed == 1
    assert len(model.calls) == 6
    assert model.max_seen == 1  # capabilities.max_in_flight=1 bounds the runner below eval_batch_size
    rep = res.reports["echo-1"]["toy_protocol"]
    assert rep["score"] == pytest.approx(0.5)
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    session = manifest["sessions"][-1]
    assert (
        session["requests_sent"],
        session["retries"],
        session["reconnects"],
        session["concurrency_cuts"],
    ) == (
        6,
        7,
        3,
        2,
    )
    assert manifest["endpoint"] == "in-process" and manifest["model"] == "echo-1"


async def test_judge_is_passed_explicitly(tmp_path: Path) -> None:
    model, judge = _Echo("main"), _Echo("judge")
    cfg = build_config({"datasets": ["toy_protocol_judged"], "work_dir": str(tmp_path), "quiet": True})
    res = await EvalRunner(cfg, out=io.StringIO(), model=model, judge=judge).run()
    assert sorted(judge.calls) == sorted(f"judge/s{i}" for i in range(6))
    assert judge.started == 1 and judge.closed == 1
    assert res.reports["main"]["toy_protocol_judged"]["score"] == pytest.approx(0.5)
    fp = json.loads((res.run_dir / "manifest.json").read_text())["fingerprints"]["toy_protocol_judged"]
    assert fp["judge"] == {"model": "judge", "endpoint": "in-process"}


class _Loader(Loader):
    name = "toy-parts-loader"

    def load(self, bench: Benchmark) -> list[Record]:
        return [Record(f"p{i}", f"q {i}", "A") for i in range(4)]


class _Prompt(PromptTemplate):
    name = "toy-parts-prompt"

    def render(self, record: Record, bench: Benchmark) -> Sample:
        return Sample(record.id, [{"role": "user", "content": record.question}], record.gold)


class _Exact(Scorer):
    name = "toy-exact"

    def score(self, sample: Sample, output: str) -> ScoreResult:
        return ScoreResult(1.0 if output == sample.gold else 0.0, output)


class _Parts(Benchmark):
    name = "toy_protocol_parts"
    loader = _Loader()
    prompt = _Prompt()
    scorer = _Exact()


if _Parts.name not in BENCHMARKS:
    BENCHMARKS.add(_Parts.name, _Parts)


async def test_part_versions_guard_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {"datasets": ["toy_protocol_parts"], "work_dir": str(tmp_path), "quiet": True}
    first = await EvalRunner(build_config(cfg), out=io.StringIO(), model=_Echo("m")).run()
    mpath = first.run_dir / "manifest.json"
    manifest = json.loads(mpath.read_text())
    fp = manifest["fingerprints"]["toy_protocol_parts"]
    assert fp["parts"] == {
        "loader": "toy-parts-loader@1",
        "prompt": "toy-parts-prompt@1",
        "scorer": "toy-exact@1",
    }
    # a run recorded before benchmarks declared parts resumes without a difference
    del fp["parts"]
    mpath.write_text(json.dumps(manifest))
    again = await EvalRunner(
        build_config({**cfg, "resume": str(first.run_dir)}), out=io.StringIO(), model=_Echo("m")
    ).run()
    assert again.sent == 0
    # a part whose version changed is a difference
    monkeypatch.setattr(_Exact, "version", "2")
    with pytest.raises(ConfigError, match=r"parts.*toy-exact@2"):
        await EvalRunner(
            build_config({**cfg, "resume": str(first.run_dir)}), out=io.StringIO(), model=_Echo("m")
        ).run()
