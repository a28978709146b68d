"""GPQA (Rein et al.): graduate-level 4-option questions, subsets ``diamond`` (198), ``main`` (448),
``extended`` (546); ``diamond`` is the default.

Layout (the original password-protected zip, unpacked): ``<dataset-dir>/gpqa/gpqa_<subset>.csv`` with
columns ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3`` and ``Record ID`` (plus metadata such as
``High-level domain`` / ``Subdomain``, kept when present). The four options are shuffled per sample with a
generator seeded from a hash of the record id, so every run and resume sees the same letters.
"""

from __future__ import annotations

from pathlib import Path

from evalscope.eval.benchmarks._common import (
    LETTERS,
    IdMaker,
    MultipleChoiceBenchmark,
    content_id,
    data_root,
    mcq_record,
    read_csv_dicts,
    require_file,
    seeded_rng,
)
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, Record

_COLS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
SHUFFLE_SALT = "gpqa-v1"


def shuffled_options(sample_key: str, correct: str, incorrect: list[str]) -> tuple[list[str], str]:
    """The options in a per-sample seeded order and the letter of the correct one."""
    opts = [correct, *incorrect]
    order = list(range(len(opts)))
    seeded_rng(sample_key, SHUFFLE_SALT).shuffle(order)
    return [opts[i] for i in order], LETTERS[order.index(0)]


class GPQALoader(Loader):
    """One CSV per subset, options shuffled with a per-record seed; no few-shot split."""

    name = "gpqa-csv"
    version = "1"

    def _file(self, bench: Benchmark, subset: str) -> Path:
        root = data_root(bench, f"gpqa_{subset}.csv")
        return require_file(root / f"gpqa_{subset}.csv", "gpqa/gpqa_<subset>.csv (diamond, main, extended)")

    def data_files(self, bench: Benchmark) -> list[Path]:
        return [self._file(bench, s) for s in bench.subset_list]

    def load(self, bench: Benchmark) -> list[Record]:
        if bench.few_shot_num > 0:
            from evalscope.errors import ConfigError

            raise ConfigError("gpqa has no few-shot split", "set few_shot_num to 0")
        samples: list[Record] = []
        for subset in bench.subset_list:
            path = self._file(bench, subset)
            ids = IdMaker()
            for _line, r in read_csv_dicts(path, _COLS):
                q = r["Question"].strip()
                incorrect = [r[f"Incorrect Answer {i}"].strip() for i in (1, 2, 3)]
                rid = (r.get("Record ID") or "").strip() or content_id(q, r["Correct Answer"], *incorrect)
                opts, gold = shuffled_options(rid, r["Correct Answer"].strip(), incorrect)
                samples.append(
                    mcq_record(
                        ids(f"{subset}/{rid}"),
                        q,
                        opts,
                        gold,
                        subset=subset,
                        category=(r.get("High-level domain") or "").strip() or None,
                        meta={"record_id": rid, "subdomain": (r.get("Subdomain") or "").strip()},
                    )
                )
        return samples


@BENCHMARKS.register("gpqa")
class GPQA(MultipleChoiceBenchmark):
    name = "gpqa"
    version = "1"
    data_subdir = "gpqa"
    subsets = ("diamond", "main", "extended")
    default_subsets = ("diamond",)
    subset_aliases = {"gpqa_diamond": "diamond", "gpqa_main": "main", "gpqa_extended": "extended"}
    default_shots = 0
    loader = GPQALoader()
