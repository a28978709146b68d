"""HellaSwag (Zellers et al.): pick the most plausible of 4 endings; validation split, train for few-shot.

Layout (the original repo's ``data/``): ``<dataset-dir>/hellaswag/hellaswag_val.jsonl`` (and
``hellaswag_train.jsonl``), objects with ``ind``, ``activity_label``, ``ctx_a``, ``ctx_b``, ``endings`` (4) and
``label`` (0-3). The context is ``ctx_a + " " + ctx_b.capitalize()``; WikiHow markup such as ``[header]`` is
removed and `` [title]`` becomes ``. `` (the common preprocessing). Sample ids are ``ind``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from evalscope.errors import DatasetError
from evalscope.eval.benchmarks._common import (
    LETTERS,
    IdMaker,
    MultipleChoiceBenchmark,
    content_id,
    data_root,
    mcq_record,
    read_jsonl,
    require_file,
    select_shots,
)
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, Record

_FIELDS = ("ctx_a", "ctx_b", "endings", "label")


def clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ").strip()


def _parse(path: Path, line: int, o: dict[str, Any]) -> tuple[str, str, list[str], str, str]:
    endings = o["endings"]
    if not isinstance(endings, list) or len(endings) != 4:
        raise DatasetError(f"data file {path} line {line}: 'endings' must be a list of 4 strings")
    try:
        label = int(o["label"])
    except (TypeError, ValueError) as e:
        raise DatasetError(
            f"data file {path} line {line}: 'label' {o['label']!r} is not an integer 0-3"
        ) from e
    if not 0 <= label <= 3:
        raise DatasetError(f"data file {path} line {line}: 'label' {label} is not in 0-3")
    ctx = clean(str(o["ctx_a"]) + " " + str(o["ctx_b"]).capitalize())
    rid = str(o["ind"]) if "ind" in o else content_id(ctx, *endings)
    return rid, ctx, [clean(str(e)) for e in endings], LETTERS[label], str(o.get("activity_label", ""))


def _question(ctx: str, activity: str) -> str:
    head = f"{activity}: " if activity else ""
    return f"Which ending continues the text most plausibly?\n\n{head}{ctx}..."


class HellaSwagLoader(Loader):
    """``hellaswag_val.jsonl``; shots from ``hellaswag_train.jsonl``."""

    name = "hellaswag-jsonl"
    version = "1"

    def _file(self, bench: Benchmark, split: str) -> Path:
        return data_root(bench, f"hellaswag_{split}.jsonl") / f"hellaswag_{split}.jsonl"

    def data_files(self, bench: Benchmark) -> list[Path]:
        out = [require_file(self._file(bench, "val"), "hellaswag/hellaswag_val.jsonl")]
        if bench.few_shot_num > 0 and self._file(bench, "train").is_file():
            out.append(self._file(bench, "train"))
        return out

    def _read(self, bench: Benchmark, path: Path) -> list[tuple[str, str, list[str], str, str]]:
        return [_parse(path, ln, o) for ln, o in read_jsonl(path, _FIELDS)]

    def load(self, bench: Benchmark) -> list[Record]:
        val = require_file(self._file(bench, "val"), "hellaswag/hellaswag_val.jsonl")
        shots: list[tuple[str, list[str], str, str | None]] = []
        if bench.few_shot_num > 0:
            train = require_file(self._file(bench, "train"), "hellaswag/hellaswag_train.jsonl")
            pool = [(_question(c, a), e, g, None) for _i, c, e, g, a in self._read(bench, train)]
            shots = select_shots(pool, bench.few_shot_num, bench.args, "hellaswag")
        ids = IdMaker()
        return [
            mcq_record(
                ids(rid),
                _question(ctx, act),
                ends,
                gold,
                shots=shots,
                meta={"activity": act},
            )
            for rid, ctx, ends, gold, act in self._read(bench, val)
        ]


@BENCHMARKS.register("hellaswag")
class HellaSwag(MultipleChoiceBenchmark):
    name = "hellaswag"
    version = "1"
    data_subdir = "hellaswag"
    default_shots = 0
    loader = HellaSwagLoader()
