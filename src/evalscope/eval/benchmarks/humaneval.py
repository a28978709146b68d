"""HumanEval (164 problems): the model completes a function; the program prompt + completion + tests runs in the
sandbox; pass@k with the unbiased estimator.

Running model-generated code is off unless ``allow_code_execution`` is set (``--allow-code-execution``); the
benchmark refuses to construct otherwise. Dataset args: ``timeout`` (seconds per program, default 10),
``allow_unisolated`` (run without namespaces when they are unavailable), ``sandbox_parallel`` (default: CPUs),
``memory_mb``, ``isolation`` (``auto`` / ``bwrap`` / ``namespaces`` / ``root`` / ``userns`` / ``container`` /
``none``), ``k_list``. A sample passes only with the harness's proof that its tests ran to the end (docs/sandbox.md).

This module also holds :class:`CodeBenchmark` and :class:`CodeExecScorer`, the bases shared with MBPP, and
:func:`build_sandbox`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from evalscope.errors import ConfigError, DatasetError
from evalscope.eval.benchmarks._common import data_root, require_file, user
from evalscope.eval.benchmarks.base import (
    BENCHMARKS,
    Benchmark,
    ExecScorer,
    Loader,
    PromptTemplate,
    Record,
    Sample,
    ScoreResult,
)
from evalscope.eval.sandbox import FAILURE_STATUSES, ExecResult, Sandbox, SandboxLimits
from evalscope.eval.scoring.code import (
    CodeExtraction,
    check_proof,
    extract_code,
    guarded_program,
    humaneval_parts,
    new_nonce,
)
from evalscope.eval.scoring.passk import aggregate_pass_at_k, ks_for, pass_at_k
from evalscope.eval.scoring.stats import mean_with_stderr

DEFAULT_TIMEOUT_S = 10.0
_COUNT_KEYS = ("passed", "failed", "timeout", "sandbox_error")


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


def require_code_execution(benchmark: str, args: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` unless ``args['allow_code_execution']`` is true (X1)."""
    if not _truthy(args.get("allow_code_execution")):
        raise ConfigError(
            f"benchmark {benchmark!r} runs model-generated code, which is off by default",
            "pass --allow-code-execution to run it in the sandbox (isolated: no network, own uid, limits; "
            "see docs/sandbox.md)",
        )


def build_sandbox(args: dict[str, Any]) -> Sandbox:
    """The sandbox a code benchmark uses, from its dataset args (``allow_unisolated``, ``sandbox_parallel``,
    ``memory_mb``, ``isolation``; the per-program ``timeout`` is read by the benchmark)."""
    limits = SandboxLimits()
    if args.get("memory_mb") is not None:
        limits.memory_mb = int(args["memory_mb"])
    if args.get("max_output_bytes") is not None:
        limits.max_output_bytes = int(args["max_output_bytes"])
    parallel = args.get("sandbox_parallel")
    timeout = float(args.get("timeout", DEFAULT_TIMEOUT_S))
    if not timeout > 0:
        raise ConfigError(f"timeout must be > 0 seconds, got {args.get('timeout')!r}")
    return Sandbox(
        max_parallel=int(parallel) if parallel else None,
        limits=limits,
        allow_unisolated=_truthy(args.get("allow_unisolated")),
        isolation=str(args.get("isolation", "auto")),
    )


class CodeExecScorer(ExecScorer):
    """Runs candidate + tests in the benchmark's sandbox under the completion-proof harness; maps the outcome
    to ``passed`` / ``failed`` / ``timeout`` / ``sandbox_error`` (HumanEval and MBPP differ in two hooks)."""

    def entry_point(self, sample: Sample) -> str | None:
        """The function the tests call (helps extraction pick the right code block)."""
        return None

    @abstractmethod
    def build_parts(self, sample: Sample, code: CodeExtraction) -> tuple[str, str]:
        """(candidate source, test source)."""

    def program(self, sample: Sample, code: CodeExtraction) -> str:
        return guarded_program(*self.build_parts(sample, code))

    @staticmethod
    def result(code: CodeExtraction, r: ExecResult, proved: bool = True) -> ScoreResult:
        if r.status == "passed" and not proved:
            # Exit code 0 without the harness's proof: the program ended before its tests did (sys.exit,
            # os._exit, unittest.main, ...). The reference harnesses count that as a failure too.
            r.status = "failed"
            r.stderr += "\n[evalscope] the program exited 0 but its tests did not run to the end\n"
        status = r.status if r.status in ("passed", "timeout", "sandbox_error") else "failed"
        detail: dict[str, Any] = {
            "exec_status": r.status,
            "returncode": r.returncode,
            "duration_s": round(r.duration_s, 4),
            "extraction": code.method,
        }
        if r.status != "passed":
            detail["stderr_tail"] = r.stderr[-1000:]
        if r.error:
            detail["sandbox_error"] = r.error
        return ScoreResult(
            value=1.0 if r.status == "passed" else 0.0,
            extracted=code.code,
            parsed=code.method != "empty",
            status=status,
            detail=detail,
        )

    async def ascore(self, sample: Sample, output: str, bench: Any) -> ScoreResult:
        code = extract_code(output, self.entry_point(sample))
        program = self.program(sample, code)
        nonce = new_nonce()
        r = await bench.sandbox.run(program, bench.timeout_s, stdin=(nonce + "\n").encode())
        proved, r.stdout = check_proof(r.stdout, nonce)
        return self.result(code, r, proved)


class CodeBenchmark(Benchmark):
    """Shared by HumanEval and MBPP: the sandbox, the code-execution gate and pass@k aggregation; scoring is
    the benchmark's :class:`CodeExecScorer`."""

    metric: ClassVar[str] = "pass@1"
    needs_code_execution: ClassVar[bool] = True
    default_generation: ClassVar[dict[str, Any]] = {"max_tokens": 2048}

    def __init__(self, dataset_dir: Path | None = None, args: dict[str, Any] | None = None) -> None:
        super().__init__(dataset_dir, args)
        require_code_execution(self.name, self.args)
        self.timeout_s = float(self.args.get("timeout", DEFAULT_TIMEOUT_S))
        self._sandbox: Sandbox | None = None

    @classmethod
    def check_allowed(cls, args: dict[str, Any]) -> None:
        """For runners that want to refuse before constructing anything."""
        require_code_execution(cls.name, args)

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = build_sandbox(self.args)
        return self._sandbox

    # -- the scorer's hooks, kept on the benchmark for callers that hold only the benchmark
    def _exec(self) -> CodeExecScorer:
        scorer = self.scorer
        assert isinstance(scorer, CodeExecScorer), f"{self.name}: a code benchmark needs a CodeExecScorer"
        return scorer

    def entry_point(self, sample: Sample) -> str | None:
        return self._exec().entry_point(sample)

    def build_program(self, sample: Sample, code: CodeExtraction) -> str:
        """The program the sandbox runs: the candidate, then the tests, under the completion-proof harness."""
        return self._exec().program(sample, code)

    def score(self, sample: Sample, output: str) -> ScoreResult:
        """Synchronous scoring (runs the sandbox on a private event loop); use :meth:`ascore` inside a loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._score_fresh(sample, output))
        raise RuntimeError(f"{self.name}.score() cannot run inside an event loop; await ascore() instead")

    async def _score_fresh(self, sample: Sample, output: str) -> ScoreResult:
        self._sandbox = None  # a sandbox's semaphore belongs to one loop
        try:
            return await self.ascore(sample, output)
        finally:
            self._sandbox = None

    # -- aggregation
    def aggregate(self, results: list[tuple[Sample, int, ScoreResult]]) -> dict[str, Any]:
        """pass@k for k = 1 and every ``k_list`` entry not above the repeats; sandbox errors are excluded from
        n (never pass, never fail) and counted apart; per-problem counts."""
        per: dict[str, dict[str, Any]] = {}
        for sample, _rep, res in results:
            row = per.setdefault(
                sample.id, {"id": sample.id, "subset": sample.subset, **dict.fromkeys(_COUNT_KEYS, 0), "n": 0}
            )
            if res.status in ("sandbox_error", "timeout"):
                status = res.status
            elif res.status == "passed" or (res.status not in FAILURE_STATUSES and res.value >= 1.0):
                status = "passed"
            else:
                status = "failed"
            row[status] += 1
            if status != "sandbox_error":
                row["n"] += 1
        scored = {pid: (row["n"], row["passed"]) for pid, row in per.items() if row["n"] > 0}
        repeats = max((n for n, _ in scored.values()), default=0)
        k_arg = self.args.get("k_list") or ()
        ks = ks_for(repeats, [int(k) for k in k_arg] if isinstance(k_arg, Sequence) else [int(k_arg)])
        pk = aggregate_pass_at_k(scored.values(), ks)
        p1 = [pass_at_k(n, c, 1) for n, c in scored.values()]
        score, stderr = mean_with_stderr(p1)
        for pid, row in per.items():
            if pid in scored:
                row["pass@1"] = pass_at_k(row["n"], row["passed"], 1)
        totals = {key: sum(int(r[key]) for r in per.values()) for key in _COUNT_KEYS}
        by_subset: dict[str, list[float]] = {}
        for pid, row in per.items():
            if pid in scored:
                by_subset.setdefault(str(row["subset"]), []).append(float(row["pass@1"]))
        return {
            "score": score,
            "stderr": stderr,
            "metric": "pass@1",
            "pass_at_k": {f"pass@{k}": v for k, v in pk.items()},
            "counts": totals,
            "num_problems": len(per),
            "num_scored_problems": len(scored),
            "problems_without_result": sorted(pid for pid in per if pid not in scored),
            "sandbox_error_rate": (totals["sandbox_error"] / max(1, sum(totals.values()))),
            "per_problem": [per[pid] for pid in sorted(per)],
            "subsets": [
                {"name": k, "score": mean_with_stderr(v)[0], "num_samples": len(v)}
                for k, v in sorted(by_subset.items())
            ],
            "categories": [],
        }


def read_jsonl_gz(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """Objects of a gzip'd JSONL file; DatasetError with the line for bad JSON or missing fields."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as e:
        raise DatasetError(f"cannot read {path}: {e}", "re-download HumanEval.jsonl.gz") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"data file {path}: not valid UTF-8", "re-download HumanEval.jsonl.gz") from e
    rows: list[dict[str, Any]] = []
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"data file {path} line {no}: bad JSON ({e.msg})") from e
        if not isinstance(obj, dict):
            raise DatasetError(f"data file {path} line {no}: expected a JSON object")
        missing = [k for k in required if k not in obj]
        if missing:
            raise DatasetError(f"data file {path} line {no}: missing field(s) {', '.join(missing)}")
        rows.append(obj)
    if not rows:
        raise DatasetError(f"data file {path} is empty", "re-download HumanEval.jsonl.gz")
    return rows


HUMANEVAL_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function (signature included) in a "
    "```python code block.\n\n```python\n{prompt}```"
)


class HumanEvalLoader(Loader):
    """``humaneval/HumanEval.jsonl.gz``: one record per task (the prompt is the function head + docstring)."""

    name = "humaneval-jsonl"
    FILE: ClassVar[str] = "HumanEval.jsonl.gz"
    FIELDS: ClassVar[tuple[str, ...]] = ("task_id", "prompt", "canonical_solution", "test", "entry_point")

    def _path(self, bench: Benchmark) -> Path:
        return require_file(data_root(bench, self.FILE) / self.FILE, f"humaneval/{self.FILE}")

    def data_files(self, bench: Benchmark) -> list[Path]:
        return [self._path(bench)]

    def load(self, bench: Benchmark) -> list[Record]:
        return [
            Record(
                id=str(obj["task_id"]),
                question=str(obj["prompt"]),
                gold={"test": obj["test"], "entry_point": obj["entry_point"]},
                meta={"prompt": obj["prompt"], "canonical_solution": obj["canonical_solution"]},
            )
            for obj in read_jsonl_gz(self._path(bench), self.FIELDS)
        ]


class HumanEvalPrompt(PromptTemplate):
    """Asks for the complete function in a python code block."""

    name = "humaneval-complete"

    def render(self, record: Record, bench: Benchmark) -> Sample:
        return Sample(
            id=record.id,
            messages=user(HUMANEVAL_INSTRUCTION.format(prompt=record.question)),
            gold=record.gold,
            meta=record.meta,
        )


class HumanEvalScorer(CodeExecScorer):
    """Program = prompt + completion (or the whole function), then the task's ``check(entry_point)``."""

    name = "humaneval-exec"

    def entry_point(self, sample: Sample) -> str | None:
        return str(sample.gold["entry_point"])

    def build_parts(self, sample: Sample, code: CodeExtraction) -> tuple[str, str]:
        return humaneval_parts(
            str(sample.meta["prompt"]), code.code, str(sample.gold["test"]), str(sample.gold["entry_point"])
        )


@BENCHMARKS.register("humaneval")
class HumanEval(CodeBenchmark):
    name = "humaneval"
    version = "1"
    data_subdir = "humaneval"
    loader = HumanEvalLoader()
    prompt = HumanEvalPrompt()
    scorer = HumanEvalScorer()

    def reference_output(self, sample: Sample, style: int = 0) -> str:
        full = str(sample.meta["prompt"]) + str(sample.meta["canonical_solution"])
        styles = [
            f"```python\n{full.rstrip()}\n```",
            f"<think>The docstring says what to do.</think>\nHere is the solution:\n\n```python\n{full.rstrip()}\n```",
            str(sample.meta["canonical_solution"]),
        ]
        return styles[style % len(styles)]

    def wrong_output(self, sample: Sample, style: int = 0) -> str:
        return f"```python\n{str(sample.meta['prompt']).rstrip()}\n    pass\n```"
