"""MATH (Hendrycks et al.) full test set, 5,000 problems, in the openai/simple-evals CSV format.

Layout: ``<dataset-dir>/math/simple-evals/math_test.csv`` with header ``,Question,Answer`` (the first column is
the row index). This format carries no subject/level, so only the overall score is reported (MATH-500 has the
breakdown). Sample ids are content hashes of the question.
"""

from __future__ import annotations

from pathlib import Path

from evalscope.eval.benchmarks._common import (
    IdMaker,
    content_id,
    data_root,
    read_csv_dicts,
    require_file,
)
from evalscope.eval.benchmarks._math_base import MathBenchmark
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, Record


class CompetitionMathLoader(Loader):
    """simple-evals' ``math_test.csv`` (``Question``, ``Answer``); no subjects, levels or few-shot split."""

    name = "math-simple-evals-csv"
    version = "1"

    def _file(self, bench: Benchmark) -> Path:
        root = data_root(bench, "simple-evals/math_test.csv")
        return require_file(root / "simple-evals" / "math_test.csv", "math/simple-evals/math_test.csv")

    def data_files(self, bench: Benchmark) -> list[Path]:
        return [self._file(bench)]

    def load(self, bench: Benchmark) -> list[Record]:
        if bench.few_shot_num > 0:
            from evalscope.errors import ConfigError

            raise ConfigError("competition_math has no few-shot split here", "set few_shot_num to 0")
        ids = IdMaker()
        out: list[Record] = []
        for _line, r in read_csv_dicts(self._file(bench), ("Question", "Answer")):
            q = r["Question"]
            out.append(Record(ids(content_id(q)), q, r["Answer"].strip()))
        return out


@BENCHMARKS.register("competition_math")
class CompetitionMath(MathBenchmark):
    name = "competition_math"
    version = "1"
    data_subdir = "math"
    default_shots = 0
    default_generation = {"max_tokens": 4096}
    loader = CompetitionMathLoader()
