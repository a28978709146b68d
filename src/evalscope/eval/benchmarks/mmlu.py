"""MMLU (Hendrycks et al.): 57 subjects, test split, 5 dev examples per subject for few-shot.

Layout (the original ``data.tar``): ``<dataset-dir>/mmlu/data/test/<subject>_test.csv`` and
``data/dev/<subject>_dev.csv``, header-less rows ``question,A,B,C,D,answer``. Categories follow the original
``categories.py`` (STEM, humanities, social sciences, other).
"""

from __future__ import annotations

from pathlib import Path

from evalscope.errors import DatasetError
from evalscope.eval.benchmarks._common import (
    IdMaker,
    MultipleChoiceBenchmark,
    content_id,
    data_root,
    mcq_record,
    read_csv_rows,
    require_file,
    select_shots,
)
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, Record

_STEM = (
    "abstract_algebra astronomy college_biology college_chemistry college_computer_science college_mathematics "
    "college_physics computer_security conceptual_physics electrical_engineering elementary_mathematics "
    "high_school_biology high_school_chemistry high_school_computer_science high_school_mathematics "
    "high_school_physics high_school_statistics machine_learning"
)
_HUMANITIES = (
    "formal_logic high_school_european_history high_school_us_history high_school_world_history "
    "international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy prehistory "
    "professional_law world_religions"
)
_SOCIAL = (
    "econometrics high_school_geography high_school_government_and_politics high_school_macroeconomics "
    "high_school_microeconomics high_school_psychology human_sexuality professional_psychology public_relations "
    "security_studies sociology us_foreign_policy"
)
_OTHER = (
    "anatomy business_ethics clinical_knowledge college_medicine global_facts human_aging management marketing "
    "medical_genetics miscellaneous nutrition professional_accounting professional_medicine virology"
)

MMLU_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(_STEM.split(), "STEM"),
    **dict.fromkeys(_HUMANITIES.split(), "humanities"),
    **dict.fromkeys(_SOCIAL.split(), "social sciences"),
    **dict.fromkeys(_OTHER.split(), "other"),
}


def _mmlu_rows(path: Path) -> list[tuple[int, list[str]]]:
    rows = read_csv_rows(path, 6)
    for line, r in rows:
        if r[5].strip().upper() not in ("A", "B", "C", "D"):
            raise DatasetError(f"data file {path} line {line}: answer {r[5]!r} is not one of A-D")
    return rows


class MMLULoader(Loader):
    """``data/test/<subject>_test.csv`` per subject; shots from ``data/dev``."""

    name = "mmlu-csv"
    version = "1"

    def _paths(self, bench: Benchmark, subject: str) -> tuple[Path, Path]:
        root = data_root(bench, "data/test/<subject>_test.csv")
        test = require_file(
            root / "data" / "test" / f"{subject}_test.csv", "mmlu/data/test/<subject>_test.csv"
        )
        return test, root / "data" / "dev" / f"{subject}_dev.csv"

    def data_files(self, bench: Benchmark) -> list[Path]:
        out: list[Path] = []
        for s in bench.subset_list:
            test, dev = self._paths(bench, s)
            out.append(test)
            if bench.few_shot_num > 0 and dev.is_file():
                out.append(dev)
        return out

    def load(self, bench: Benchmark) -> list[Record]:
        samples: list[Record] = []
        for subject in bench.subset_list:
            test, dev = self._paths(bench, subject)
            shots: list[tuple[str, list[str], str, str | None]] = []
            if bench.few_shot_num > 0:
                require_file(dev, "mmlu/data/dev/<subject>_dev.csv")
                pool = [(r[0], r[1:5], r[5].strip().upper(), None) for _, r in _mmlu_rows(dev)]
                shots = select_shots(pool, bench.few_shot_num, bench.args, subject)
            pretty = subject.replace("_", " ")
            ids = IdMaker()
            for _line, r in _mmlu_rows(test):
                q, opts, ans = r[0], r[1:5], r[5].strip().upper()
                samples.append(
                    mcq_record(
                        ids(f"{subject}/{content_id(q, *opts)}"),
                        q,
                        opts,
                        ans,
                        subset=subject,
                        category=MMLU_CATEGORIES.get(subject, "other"),
                        shots=shots,
                        preamble=f"The following is a question about {pretty}.",
                        meta={"subject": subject},
                    )
                )
        return samples


@BENCHMARKS.register("mmlu")
class MMLU(MultipleChoiceBenchmark):
    name = "mmlu"
    version = "1"
    data_subdir = "mmlu"
    subsets = tuple(sorted(MMLU_CATEGORIES))
    default_shots = 0
    loader = MMLULoader()
