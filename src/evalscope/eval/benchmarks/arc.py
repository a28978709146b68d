"""ARC (AI2 Reasoning Challenge), subsets ``ARC-Easy`` and ``ARC-Challenge``; test split, train for few-shot.

Layout (the AI2 release): ``<dataset-dir>/arc/<subset>/<subset>-Test.jsonl`` (and ``-Train.jsonl``), one
object per line ``{"id", "question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}``. Numeric labels
``1-4`` are mapped to letters ``A-D`` by position; questions with 3 or 5 options keep that many letters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalscope.errors import DatasetError
from evalscope.eval.benchmarks._common import (
    LETTERS,
    IdMaker,
    MultipleChoiceBenchmark,
    data_root,
    read_jsonl,
    require_file,
    select_shots,
)
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, Record


def _parse(path: Path, line: int, obj: dict[str, Any]) -> tuple[str, str, list[str], str]:
    q = obj.get("question")
    if not isinstance(q, dict) or "stem" not in q or not isinstance(q.get("choices"), list):
        raise DatasetError(f"data file {path} line {line}: 'question' must hold 'stem' and a 'choices' list")
    choices = q["choices"]
    if not 2 <= len(choices) <= len(LETTERS) or not all(isinstance(c, dict) and "text" in c for c in choices):
        raise DatasetError(f"data file {path} line {line}: bad 'choices'")
    labels = [str(c.get("label", LETTERS[i])).strip() for i, c in enumerate(choices)]
    key = str(obj["answerKey"]).strip()
    if key not in labels:
        raise DatasetError(f"data file {path} line {line}: answerKey {key!r} is not among labels {labels}")
    return str(obj["id"]), str(q["stem"]), [str(c["text"]) for c in choices], LETTERS[labels.index(key)]


class ArcLoader(Loader):
    """``<subset>/<subset>-Test.jsonl`` per subset; shots from ``-Train.jsonl`` of the same subset."""

    name = "arc-jsonl"
    version = "1"

    def _file(self, bench: Benchmark, subset: str, split: str) -> Path:
        root = data_root(bench, f"{subset}/{subset}-{split}.jsonl")
        return root / subset / f"{subset}-{split}.jsonl"

    def data_files(self, bench: Benchmark) -> list[Path]:
        out = [
            require_file(self._file(bench, s, "Test"), "arc/<subset>/<subset>-Test.jsonl")
            for s in bench.subset_list
        ]
        if bench.few_shot_num > 0:
            out += [
                self._file(bench, s, "Train")
                for s in bench.subset_list
                if self._file(bench, s, "Train").is_file()
            ]
        return out

    def _read(self, path: Path) -> list[tuple[str, str, list[str], str]]:
        return [_parse(path, ln, o) for ln, o in read_jsonl(path, ("id", "question", "answerKey"))]

    def load(self, bench: Benchmark) -> list[Record]:
        records: list[Record] = []
        for subset in bench.subset_list:
            test = require_file(self._file(bench, subset, "Test"), "arc/<subset>/<subset>-Test.jsonl")
            shots: list[tuple[str, list[str], str, str | None]] = []
            if bench.few_shot_num > 0:
                train = require_file(self._file(bench, subset, "Train"), "arc/<subset>/<subset>-Train.jsonl")
                pool = [(q, o, a, None) for _i, q, o, a in self._read(train)]
                shots = select_shots(pool, bench.few_shot_num, bench.args, subset)
            ids = IdMaker()
            for rid, q, opts, ans in self._read(test):
                records.append(Record(ids(rid), q, ans, subset=subset, choices=opts, shots=shots))
        return records


@BENCHMARKS.register("arc")
class ARC(MultipleChoiceBenchmark):
    name = "arc"
    version = "1"
    data_subdir = "arc"
    subsets = ("ARC-Easy", "ARC-Challenge")
    subset_aliases = {
        "easy": "ARC-Easy",
        "challenge": "ARC-Challenge",
        "ARC-C": "ARC-Challenge",
        "ARC-E": "ARC-Easy",
    }
    default_shots = 0
    loader = ArcLoader()
