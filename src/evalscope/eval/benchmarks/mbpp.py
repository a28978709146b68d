"""MBPP: write a Python function from a one-line task and three asserts; the program setup + code + asserts runs
in the sandbox; pass@k.

Variants (dataset arg ``variant``): ``full`` (default, ``mbpp.jsonl``) and ``sanitized`` (the hand-verified
``sanitized-mbpp.json``). Splits (``split``) follow the original task-id ranges: ``test`` 11-510 (default),
``prompt`` 1-10, ``validation`` 511-600, ``train`` 601-974, ``all``. Shots (default 3) are task ids 2, 3, 4 of
the same variant, inlined in one user message. Code execution needs ``allow_code_execution`` (see
:mod:`evalscope.eval.benchmarks.humaneval`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from evalscope.errors import ConfigError, DatasetError
from evalscope.eval.benchmarks._common import (
    data_root,
    read_json,
    read_jsonl,
    require_file,
    select_shots,
    user,
)
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, PromptTemplate, Record, Sample
from evalscope.eval.benchmarks.humaneval import CodeBenchmark, CodeExecScorer, build_sandbox
from evalscope.eval.scoring.code import CodeExtraction, mbpp_parts

__all__ = ["MBPP", "build_sandbox"]

SPLITS: dict[str, tuple[int, int]] = {
    "test": (11, 510),
    "prompt": (1, 10),
    "validation": (511, 600),
    "train": (601, 974),
    "all": (1, 10**9),
}
SHOT_IDS = (2, 3, 4)
VARIANT_FILES = {"full": "mbpp.jsonl", "sanitized": "sanitized-mbpp.json"}

TASK_TEMPLATE = "You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\n\n{tests}\n"
INSTRUCTION = "Reply with the code in a ```python code block."
_CALLED = re.compile(
    r"assert\s+(?:not\s+)?\(?\s*(?:set\(|sorted\(|math\.isclose\(|abs\()?\s*([A-Za-z_]\w*)\s*\("
)


def _entry_from_tests(tests: list[str]) -> str | None:
    for t in tests:
        m = _CALLED.search(t)
        if m:
            return m.group(1)
    return None


def _task_text(row: dict[str, Any]) -> str:
    return TASK_TEMPLATE.format(text=row["text"], tests="\n".join(row["tests"]))


class MBPPLoader(Loader):
    """``mbpp/mbpp.jsonl`` (full) or ``mbpp/sanitized-mbpp.json``; the split's task-id range; shots are task
    ids 2, 3, 4 of the same variant."""

    name = "mbpp-files"

    def _path(self, bench: Benchmark) -> Path:
        fname = VARIANT_FILES[_variant(bench)]
        return require_file(data_root(bench, fname) / fname, f"mbpp/{fname}")

    def data_files(self, bench: Benchmark) -> list[Path]:
        return [self._path(bench)]

    def _rows(self, bench: Benchmark) -> list[dict[str, Any]]:
        path = self._path(bench)
        full = _variant(bench) == "full"
        rows: list[tuple[int, dict[str, Any]]]
        if full:
            rows = read_jsonl(path, ("task_id", "text", "code", "test_list"))
        else:
            data = read_json(path)
            if not isinstance(data, list):
                raise DatasetError(f"data file {path}: expected a JSON list of tasks")
            rows = list(enumerate(data, start=1))
        out: list[dict[str, Any]] = []
        for no, obj in rows:
            if not isinstance(obj, dict):
                raise DatasetError(f"data file {path} item {no}: expected an object")
            text_key = "text" if full else "prompt"
            missing = [k for k in ("task_id", text_key, "code", "test_list") if k not in obj]
            if missing:
                raise DatasetError(f"data file {path} item {no}: missing field(s) {', '.join(missing)}")
            if not isinstance(obj["test_list"], list) or not obj["test_list"]:
                raise DatasetError(f"data file {path} item {no}: 'test_list' must be a non-empty list")
            out.append(
                {
                    "task_id": int(obj["task_id"]),
                    "text": str(obj[text_key]).strip(),
                    "code": str(obj["code"]),
                    "tests": [str(t) for t in obj["test_list"]],
                    "setup": str(obj.get("test_setup_code") or ""),
                    "imports": [str(t) for t in obj.get("test_imports") or []],
                }
            )
        if not out:
            raise DatasetError(f"data file {path} holds no tasks")
        return out

    def load(self, bench: Benchmark) -> list[Record]:
        rows = self._rows(bench)
        by_id = {r["task_id"]: r for r in rows}
        pool = [by_id[i] for i in SHOT_IDS if i in by_id]
        shots = select_shots(pool, bench.few_shot_num, bench.args, key="mbpp")
        lo, hi = SPLITS[str(getattr(bench, "split", "test"))]
        return [
            Record(
                id=str(row["task_id"]),
                question=_task_text(row),
                gold={"tests": row["tests"], "setup": row["setup"], "imports": row["imports"]},
                subset=_variant(bench),
                shots=shots,
                meta={"reference_code": row["code"], "entry_point": _entry_from_tests(row["tests"])},
            )
            for row in sorted(rows, key=lambda r: r["task_id"])
            if lo <= row["task_id"] <= hi
        ]


def _variant(bench: Benchmark) -> str:
    return str(getattr(bench, "variant", "full"))


class MBPPPrompt(PromptTemplate):
    """The shots inlined (task, tests, solution in a code block), then the task and the code-block request."""

    name = "mbpp-inline-shots"

    def render(self, record: Record, bench: Benchmark) -> Sample:
        prefix = "".join(
            _task_text(s) + "```python\n" + s["code"].replace("\r\n", "\n").rstrip() + "\n```\n\n"
            for s in record.shots
        )
        return Sample(
            id=record.id,
            messages=user(prefix + record.question + INSTRUCTION),
            gold=record.gold,
            subset=record.subset,
            meta=record.meta,
        )


class MBPPScorer(CodeExecScorer):
    """Program = test imports, setup code, the candidate, then the task's asserts."""

    name = "mbpp-exec"

    def entry_point(self, sample: Sample) -> str | None:
        ep = sample.meta.get("entry_point")
        return str(ep) if ep else None

    def build_parts(self, sample: Sample, code: CodeExtraction) -> tuple[str, str]:
        gold = sample.gold
        return mbpp_parts(code.code, list(gold["tests"]), str(gold["setup"]), list(gold["imports"]))


@BENCHMARKS.register("mbpp")
class MBPP(CodeBenchmark):
    name = "mbpp"
    version = "1"
    data_subdir = "mbpp"
    default_shots = 3
    subsets = ("default",)
    loader = MBPPLoader()
    prompt = MBPPPrompt()
    scorer = MBPPScorer()

    def __init__(self, dataset_dir: Path | None = None, args: dict[str, Any] | None = None) -> None:
        super().__init__(dataset_dir, args)
        self.variant = str(self.args.get("variant", "full"))
        if self.variant not in VARIANT_FILES:
            raise ConfigError(
                f"mbpp: unknown variant {self.variant!r}", f"allowed: {', '.join(sorted(VARIANT_FILES))}"
            )
        self.split = str(self.args.get("split", "test"))
        if self.split not in SPLITS:
            raise ConfigError(f"mbpp: unknown split {self.split!r}", f"allowed: {', '.join(SPLITS)}")

    def reference_output(self, sample: Sample, style: int = 0) -> str:
        code = str(sample.meta["reference_code"]).replace("\r\n", "\n").rstrip()
        styles = [f"```python\n{code}\n```", f"[BEGIN]\n{code}\n[DONE]", code]
        return styles[style % len(styles)]

    def wrong_output(self, sample: Sample, style: int = 0) -> str:
        ep = self.entry_point(sample) or "solution"
        return f"```python\ndef {ep}(*args, **kwargs):\n    pass\n```"
