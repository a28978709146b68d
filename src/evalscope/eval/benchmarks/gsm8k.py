"""GSM8K (Cobbe et al.): 1,319 grade-school word problems; train (7,473) gives few-shot examples.

Layout (the original repo): ``<dataset-dir>/gsm8k/test.jsonl`` and ``train.jsonl``, objects
``{"question", "answer"}`` where ``answer`` ends with ``#### <number>``. Gold = that number (commas removed).
Few-shot solutions drop the ``<<...>>`` calculator annotations and end with ``\\boxed{<number>}``.
Sample ids are content hashes of the question.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from evalscope.errors import DatasetError
from evalscope.eval.benchmarks._common import (
    IdMaker,
    content_id,
    data_root,
    read_jsonl,
    require_file,
    select_shots,
)
from evalscope.eval.benchmarks._math_base import MathBenchmark
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, Record


def _split(path: Path, line: int, o: dict[str, Any]) -> tuple[str, str, str]:
    ans = str(o["answer"])
    if "####" not in ans:
        raise DatasetError(f"data file {path} line {line}: 'answer' has no '#### <number>' line")
    work, _, final = ans.rpartition("####")
    final = final.strip().replace(",", "")
    if not final:
        raise DatasetError(f"data file {path} line {line}: empty final answer after '####'")
    return str(o["question"]), re.sub(r"<<[^>]*>>", "", work).strip(), final


class Gsm8kLoader(Loader):
    """``test.jsonl``; shots from ``train.jsonl`` (solutions without calculator annotations, boxed answer)."""

    name = "gsm8k-jsonl"
    version = "1"

    def _file(self, bench: Benchmark, split: str) -> Path:
        return data_root(bench, f"{split}.jsonl") / f"{split}.jsonl"

    def data_files(self, bench: Benchmark) -> list[Path]:
        out = [require_file(self._file(bench, "test"), "gsm8k/test.jsonl")]
        if bench.few_shot_num > 0:
            out.append(require_file(self._file(bench, "train"), "gsm8k/train.jsonl"))
        return out

    def _read(self, path: Path) -> list[tuple[str, str, str]]:
        return [_split(path, ln, o) for ln, o in read_jsonl(path, ("question", "answer"))]

    def load(self, bench: Benchmark) -> list[Record]:
        test = require_file(self._file(bench, "test"), "gsm8k/test.jsonl")
        shots: list[tuple[str, str]] = []
        if bench.few_shot_num > 0:
            train = require_file(self._file(bench, "train"), "gsm8k/train.jsonl")
            pool = [(q, f"{w}\nThe final answer is $\\boxed{{{a}}}$.") for q, w, a in self._read(train)]
            shots = select_shots(pool, bench.few_shot_num, bench.args, "gsm8k")
        ids = IdMaker()
        return [
            Record(ids(content_id(q)), q, a, shots=shots, meta={"solution": w})
            for q, w, a in self._read(test)
        ]


@BENCHMARKS.register("gsm8k")
class GSM8K(MathBenchmark):
    name = "gsm8k"
    version = "1"
    data_subdir = "gsm8k"
    default_shots = 0
    default_generation = {"max_tokens": 2048}
    loader = Gsm8kLoader()
