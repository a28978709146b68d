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
    mcq_sample,
    read_jsonl,
    require_file,
    select_shots,
)
from evalscope.eval.benchmarks.base import BENCHMARKS, Sample


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

    def _file(self, subset: str, split: str) -> Path:
        root = data_root(self, f"{subset}/{subset}-{split}.jsonl")
        return root / subset / f"{subset}-{split}.jsonl"

    def data_files(self) -> list[Path]:
        out = [
            require_file(self._file(s, "Test"), "arc/<subset>/<subset>-Test.jsonl") for s in self.subset_list
        ]
        if self.few_shot_num > 0:
            out += [self._file(s, "Train") for s in self.subset_list if self._file(s, "Train").is_file()]
        return out

    def _read(self, path: Path) -> list[tuple[str, str, list[str], str]]:
        return [_parse(path, ln, o) for ln, o in read_jsonl(path, ("id", "question", "answerKey"))]

    def load(self) -> list[Sample]:
        samples: list[Sample] = []
        for subset in self.subset_list:
            test = require_file(self._file(subset, "Test"), "arc/<subset>/<subset>-Test.jsonl")
            shots: list[tuple[str, list[str], str, str | None]] = []
            if self.few_shot_num > 0:
                train = require_file(self._file(subset, "Train"), "arc/<subset>/<subset>-Train.jsonl")
                pool = [(q, o, a, None) for _i, q, o, a in self._read(train)]
                shots = select_shots(pool, self.few_shot_num, self.args, subset)
            ids = IdMaker()
            for rid, q, opts, ans in self._read(test):
                samples.append(
                    mcq_sample(ids(rid), q, opts, ans, subset=subset, shots=shots, turns=self.shots_as_turns)
                )
        return samples
