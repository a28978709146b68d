"""The runner against a faulty simulator: transient errors retried, permanent failures errored (never scored as
wrong), sustained 429 backs the concurrency off, reasoning kept apart, bounded in-flight requests."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from evalscope.engine import retry as retry_mod
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Sample, ScoreResult
from evalscope.eval.config import build_config
from evalscope.eval.models.base import Model
from evalscope.eval.runner import arun_eval

pytestmark = pytest.mark.integration


class ToyMCQ(Benchmark):
    """Synthetic MCQ: sample i's gold is "ABCD"[i % 4]; the prompt carries a unique tag."""

    name = "toy_mcq_runner"
    version = "7"
    n: ClassVar[int] = 40

    def load(self) -> list[Sample]:
        out = []
        for i in range(int(self.args.get("n", self.n))):
            prompt = f"[toy-{i}] Pick one.\nA) a\nB) b\nC) c\nD) d"
            out.append(
                Sample(
                    id=f"t{i}",
                    messages=[{"role": "user", "content": prompt}],
                    gold="ABCD"[i % 4],
                    subset="even" if i % 2 == 0 else "odd",
                )
            )
        return out

    def score(self, sample: Sample, output: str) -> ScoreResult:
        from evalscope.eval.scoring.extract import extract_choice

        letter = extract_choice(output, "ABCD")
        return ScoreResult(1.0 if letter == sample.gold else 0.0, letter, letter is not None)


if "toy_mcq_runner" not in BENCHMARKS:
    BENCHMARKS.add("toy_mcq_runner", ToyMCQ)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_mod, "BACKOFF_SCALE", 0.0)


def _cfg(url: str, tmp: Path, **kw: Any) -> Any:
    base: dict[str, Any] = {
        "model": "m",
        "api_url": url,
        "datasets": ["toy_mcq_runner"],
        "work_dir": str(tmp / "o"),
        "eval_batch_size": 8,
        "quiet": True,
    }
    base.update(kw)
    return build_config(base)


def _journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run_dir / "journal" / "toy_mcq_runner.jsonl").read_text().splitlines()]


async def test_transient_errors_are_retried_to_success(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    cfg = SimConfig(
        policy="scripted",
        script_rules=[{"pattern": r"\[toy-\d*[02468]\]", "reply": "ANSWER: A"}],
        script_default="ANSWER: B",
        ttft_ms=1,
        itl_ms=0,
        error_rate=0.2,
        drop_rate=0.1,
        rate_429=0.1,
        retry_after=0.0,
        models=["m"],
        seed=3,
    )
    async with SimServer(cfg) as sim:
        res = await arun_eval(_cfg(sim.url, tmp_path, max_attempts=30, preflight=False), out=io.StringIO())
    rep = res.report("toy_mcq_runner")
    assert rep["errored"] == 0 and rep["num_samples"] == 40
    # even samples answer A (gold A for i%4==0), odd answer B (gold B for i%4==1): exactly half right
    assert rep["score"] == 0.5
    assert rep["performance"]["retries"] > 0
    assert {s["name"] for s in rep["subsets"]} == {"even", "odd"}
    assert any(e.get("attempts", 1) > 1 for e in _journal(res.run_dir))


async def test_permanent_failures_are_errored_not_wrong(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    cfg = SimConfig(policy="choice", ttft_ms=1, itl_ms=0, error_rate=1.0, models=["m"])
    async with SimServer(cfg) as sim:
        res = await arun_eval(_cfg(sim.url, tmp_path, max_attempts=3, preflight=False), out=io.StringIO())
        sent = len(sim.truth)
    rep = res.report("toy_mcq_runner")
    assert rep["errored"] == 40 and rep["num_samples"] == 0 and rep["score"] is None
    assert rep["errors"] == {"http_status:500": 40}
    assert sent == 40 * 3  # max attempts, never forever
    entries = _journal(res.run_dir)
    assert all(e["status"] == "errored" and "score" not in e for e in entries)


async def test_non_retryable_status_is_not_retried(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    async with SimServer(SimConfig(policy="choice", ttft_ms=1, itl_ms=0, models=["other"])) as sim:
        res = await arun_eval(_cfg(sim.url, tmp_path, preflight=False, max_attempts=5), out=io.StringIO())
        sent = len(sim.truth)
    rep = res.report("toy_mcq_runner")
    assert rep["errored"] == 40 and sent <= 40


async def test_sustained_429_backs_concurrency_off(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    cfg = SimConfig(policy="choice", ttft_ms=5, itl_ms=0, rate_429=0.6, retry_after=0.0, models=["m"], seed=1)
    async with SimServer(cfg) as sim:
        res = await arun_eval(
            _cfg(
                sim.url,
                tmp_path,
                preflight=False,
                max_attempts=50,
                eval_batch_size=32,
                dataset_args={"toy_mcq_runner": {"n": 120}},
            ),
            out=io.StringIO(),
        )
    rep = res.report("toy_mcq_runner")
    assert rep["errored"] == 0 and rep["num_samples"] == 120
    assert rep["performance"]["concurrency_cuts"] >= 1


async def test_reasoning_is_kept_apart_and_removed_before_scoring(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    reply = "<think>Maybe C? ANSWER: C. No.</think>\nANSWER: A"
    cfg = SimConfig(
        policy="scripted",
        script_rules=[{"pattern": "toy", "reply": reply}],
        ttft_ms=1,
        itl_ms=0,
        reasoning_tokens=6,
        models=["m"],
    )
    async with SimServer(cfg) as sim:
        res = await arun_eval(
            _cfg(sim.url, tmp_path, dataset_args={"toy_mcq_runner": {"n": 8}}), out=io.StringIO()
        )
    entries = _journal(res.run_dir)
    for e in entries:
        assert e["output"] == reply
        assert "ANSWER: C" in e["reasoning"] and len(e["reasoning"]) > len("Maybe C? ANSWER: C. No.")
        assert e["extracted"] == "A"
    assert res.report("toy_mcq_runner")["score"] == pytest.approx(2 / 8)


async def test_in_flight_never_exceeds_batch_size(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    async with SimServer(SimConfig(policy="choice", ttft_ms=30, itl_ms=0, models=["m"])) as sim:
        await arun_eval(_cfg(sim.url, tmp_path, eval_batch_size=5, preflight=False), out=io.StringIO())
        recs = sorted(sim.truth.values(), key=lambda r: r.arrival_ns)
    events = sorted([(r.arrival_ns, 1) for r in recs] + [(r.end_ns or r.arrival_ns, -1) for r in recs])
    cur = peak = 0
    for _t, d in events:
        cur += d
        peak = max(peak, cur)
    assert peak <= 5 and len(recs) == 40


async def test_repeats_are_keyed_and_counted(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    cfg = SimConfig(
        policy="scripted",
        script_rules=[{"pattern": "toy", "reply": "ANSWER: A"}],
        ttft_ms=1,
        itl_ms=0,
        models=["m"],
    )
    async with SimServer(cfg) as sim:
        res = await arun_eval(
            _cfg(sim.url, tmp_path, repeats=3, dataset_args={"toy_mcq_runner": {"n": 8}}, preflight=False),
            out=io.StringIO(),
        )
        ids = sorted(str(r.request_id) for r in sim.truth.values())
    rep = res.report("toy_mcq_runner")
    assert rep["num_samples"] == 24 and rep["repeats"] == 3 and rep["score"] == pytest.approx(0.25)
    assert len(ids) == 24 and len(set(ids)) == 24
    assert {(e["sample_id"], e["repeat"]) for e in _journal(res.run_dir)} == {
        (f"t{i}", r) for i in range(8) for r in range(3)
    }


def test_sigterm_drains_writes_reports_and_exits_130(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from evalscope.sim import SimConfig, SimProcess

    d = tmp_path / "data" / "gsm8k"
    d.mkdir(parents=True)
    (d / "test.jsonl").write_text(
        "\n".join(json.dumps({"question": f"q{i} plus?", "answer": f"#### {i}"}) for i in range(400)) + "\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    with SimProcess(SimConfig(policy="choice", ttft_ms=300, itl_ms=0, models=["m"])) as sim:
        work = tmp_path / "w"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evalscope",
                "eval",
                "--model",
                "m",
                "--api-url",
                sim.url,
                "--datasets",
                "gsm8k",
                "--dataset-dir",
                str(tmp_path / "data"),
                "--eval-batch-size",
                "8",
                "--work-dir",
                str(work),
                "--run-name",
                "r",
                "--quiet",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        journal = work / "r" / "journal" / "gsm8k.jsonl"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                journal.exists() and journal.read_bytes().count(b"\n") >= 16
            ):
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Interrupted" in err
    manifest = json.loads((work / "r" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    lines = journal.read_text().splitlines()
    assert 16 <= len(lines) < 400
    assert all(json.loads(x)["status"] == "scored" for x in lines)  # in-flight requests were drained, not cut
    rep = json.loads((work / "r" / "reports" / "m" / "gsm8k.json").read_text())
    assert rep["num_samples"] == len(lines)


async def test_truncated_and_unparsed_rates(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    rules = [
        {
            "pattern": r"\[toy-[0-3]\]",
            "reply": "Let me think at length about every option before answering.\nANSWER: A",
        },
        {"pattern": r"\[toy-[4-5]\]", "reply": "No idea."},
    ]
    cfg = SimConfig(
        policy="scripted", script_rules=rules, script_default="ANSWER: A", ttft_ms=1, itl_ms=0, models=["m"]
    )
    async with SimServer(cfg) as sim:
        res = await arun_eval(
            _cfg(
                sim.url, tmp_path, dataset_args={"toy_mcq_runner": {"n": 8}}, generation_config="max_tokens=4"
            ),
            out=io.StringIO(),
        )
    rep = res.report("toy_mcq_runner")
    # toy-0..3 cut at 4 tokens (finish_reason=length, no answer); toy-4,5 answer nothing; toy-6,7 answer A
    assert rep["truncated"] == 4 and rep["truncated_rate"] == pytest.approx(0.5)
    assert rep["unparsed"] == 6 and rep["unparsed_rate"] == pytest.approx(0.75)
    assert rep["score"] == pytest.approx(0.0)  # toy-6 gold C, toy-7 gold D
    assert rep["generation"] == {"max_tokens": 4}


async def test_errors_are_never_cached_and_are_reported(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    out = io.StringIO()
    async with SimServer(
        SimConfig(policy="choice", ttft_ms=1, itl_ms=0, error_rate=1.0, models=["m"])
    ) as sim:
        res = await arun_eval(
            _cfg(
                sim.url,
                tmp_path,
                quiet=False,
                preflight=False,
                max_attempts=2,
                use_cache=str(tmp_path / "c"),
                dataset_args={"toy_mcq_runner": {"n": 5}},
            ),
            out=out,
        )
    assert res.errored == 5
    assert (tmp_path / "c" / "responses.jsonl").read_bytes() == b""
    assert "5 sample(s) errored (http_status:500 x5)" in out.getvalue()
    assert f"--resume {res.run_dir}" in out.getvalue()


async def test_run_directory_in_use_is_refused(tmp_path: Path) -> None:
    import fcntl

    from evalscope.errors import ConfigError
    from evalscope.sim import SimConfig, SimServer

    async with SimServer(SimConfig(policy="choice", ttft_ms=1, itl_ms=0, models=["m"])) as sim:
        first = await arun_eval(
            _cfg(sim.url, tmp_path, dataset_args={"toy_mcq_runner": {"n": 4}}), out=io.StringIO()
        )
        with open(first.run_dir / ".lock", "a+") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            with pytest.raises(ConfigError, match="in use by another evalscope process"):
                await arun_eval(
                    _cfg(
                        sim.url,
                        tmp_path,
                        resume=str(first.run_dir),
                        dataset_args={"toy_mcq_runner": {"n": 4}},
                    ),
                    out=io.StringIO(),
                )
        again = await arun_eval(
            _cfg(sim.url, tmp_path, resume=str(first.run_dir), dataset_args={"toy_mcq_runner": {"n": 4}}),
            out=io.StringIO(),
        )
    assert again.run_dir == first.run_dir and again.sent == 0


class ToyJudged(ToyMCQ):
    """Scores by asking the judge model (passed to ``ajudge`` by the runner)."""

    name = "toy_judged_runner"
    uses_judge = True

    async def ajudge(self, sample: Sample, output: str, judge: Model) -> ScoreResult:
        verdict = await judge.generate(
            [{"role": "user", "content": f"Is this right? {output}"}], {}, f"judge/{sample.id}"
        )
        ok = "YES" in verdict.text
        return ScoreResult(1.0 if ok else 0.0, verdict.text, True)


if "toy_judged_runner" not in BENCHMARKS:
    BENCHMARKS.add("toy_judged_runner", ToyJudged)


async def test_judge_model_is_handed_to_benchmarks(tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    main = SimConfig(
        policy="scripted",
        script_rules=[{"pattern": r"\[toy-[0-2]\]", "reply": "ANSWER: A"}],
        script_default="ANSWER: B",
        ttft_ms=1,
        itl_ms=0,
        models=["m"],
    )
    judge = SimConfig(
        policy="scripted",
        script_rules=[{"pattern": "ANSWER: A", "reply": "YES"}],
        script_default="NO",
        ttft_ms=1,
        itl_ms=0,
        models=["judge-m"],
    )
    async with SimServer(main) as sim, SimServer(judge) as jsim:
        res = await arun_eval(
            _cfg(
                sim.url,
                tmp_path,
                datasets=["toy_judged_runner"],
                judge_model="judge-m",
                judge_api_url=jsim.url,
                dataset_args={"toy_judged_runner": {"n": 10}},
            ),
            out=io.StringIO(),
        )
        judged = [str(r.request_id) for r in jsim.truth.values()]
    rep = res.report("toy_judged_runner")
    assert rep["score"] == pytest.approx(0.3)
    assert sorted(judged) == sorted(f"judge/t{i}" for i in range(10))
