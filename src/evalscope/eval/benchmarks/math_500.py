"""MATH-500 (the PRM800K subset of the MATH test set): 500 problems with subject and level.

Layout: ``<dataset-dir>/math500/test.jsonl``, objects ``{"problem", "solution", "answer", "subject", "level",
"unique_id"}``. Subsets are the levels (``Level 1`` .. ``Level 5``), categories are the seven subjects, so the
report breaks the score down by both. Sample ids are ``unique_id`` (e.g. ``test/precalculus/807.json``).
"""

from __future__ import annotations

from pathlib import Path

from evalscope.errors import DatasetError
from evalscope.eval.benchmarks._common import IdMaker, content_id, data_root, read_jsonl, require_file
from evalscope.eval.benchmarks._math_base import MathBenchmark
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, Record

LEVELS = ("Level 1", "Level 2", "Level 3", "Level 4", "Level 5")


class Math500Loader(Loader):
    """``test.jsonl``; levels are the subsets, subjects the categories; no few-shot split."""

    name = "math500-jsonl"
    version = "1"

    def _file(self, bench: Benchmark) -> Path:
        return require_file(data_root(bench, "test.jsonl") / "test.jsonl", "math500/test.jsonl")

    def data_files(self, bench: Benchmark) -> list[Path]:
        return [self._file(bench)]

    def load(self, bench: Benchmark) -> list[Record]:
        if bench.few_shot_num > 0:
            from evalscope.errors import ConfigError

            raise ConfigError("math_500 has no few-shot split", "set few_shot_num to 0")
        path = self._file(bench)
        ids = IdMaker()
        out: list[Record] = []
        for line, o in read_jsonl(path, ("problem", "answer")):
            lv = o.get("level")
            level = f"Level {lv}" if isinstance(lv, int) or str(lv).isdigit() else str(lv or "Level ?")
            if level not in bench.subset_list:
                if level not in LEVELS:
                    raise DatasetError(f"data file {path} line {line}: unknown level {lv!r}")
                continue
            rid = str(o.get("unique_id") or content_id(o["problem"]))
            out.append(
                Record(
                    ids(rid),
                    str(o["problem"]),
                    str(o["answer"]).strip(),
                    subset=level,
                    category=str(o.get("subject") or "") or None,
                    meta={"subject": o.get("subject"), "level": lv},
                )
            )
        return out


@BENCHMARKS.register("math_500")
class Math500(MathBenchmark):
    name = "math_500"
    version = "1"
    data_subdir = "math500"
    subsets = LEVELS
    default_shots = 0
    default_generation = {"max_tokens": 4096}
    loader = Math500Loader()
