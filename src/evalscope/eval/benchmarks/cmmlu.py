"""CMMLU (Li et al.): 67 Chinese subjects; ``test`` is evaluated, ``dev`` (5 per subject) gives few-shot examples.

Layout (the original repo's ``data/``): ``<dataset-dir>/cmmlu/test/<subject>.csv`` and ``cmmlu/dev/<subject>.csv``
with header ``,Question,A,B,C,D,Answer``. Categories follow the CMMLU repo's ``categories.py`` (a subject's first
sub-category decides among STEM / Humanities / Social Science / Other; the overlapping "China specific" tag is
kept in ``meta['china_specific']``). Prompts are in Chinese and ask for a last line ``答案：X``.
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
    read_csv_dicts,
    require_file,
    select_shots,
)
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, Record

# subject -> (category, china specific)
_SPEC = """
agronomy O; anatomy S; ancient_chinese SS*; arts H; astronomy S; business_ethics SS; chinese_civil_service_exam SS*;
chinese_driving_rule O*; chinese_food_culture SS*; chinese_foreign_policy SS*; chinese_history H*;
chinese_literature H*; chinese_teacher_qualification SS*; clinical_knowledge O; college_actuarial_science S;
college_education SS; college_engineering_hydrology S; college_law H; college_mathematics S;
college_medical_statistics S; college_medicine O; computer_science S; computer_security O; conceptual_physics S;
construction_project_management O*; economics SS; education SS; electrical_engineering S; elementary_chinese SS*;
elementary_commonsense O*; elementary_information_and_technology O; elementary_mathematics S; ethnology SS*;
food_science O; genetics S; global_facts H; high_school_biology S; high_school_chemistry S;
high_school_geography SS; high_school_mathematics S; high_school_physics S; high_school_politics SS*;
human_sexuality O; international_law H; journalism SS; jurisprudence H; legal_and_moral_basis O; logical H;
machine_learning S; management SS; marketing SS; marxist_theory H; modern_chinese SS*; nutrition O; philosophy H;
professional_accounting SS; professional_law H; professional_medicine O; professional_psychology SS;
public_relations SS; security_study SS; sociology SS; sports_science O; traditional_chinese_medicine O*;
virology S; world_history H; world_religions H
"""
_CAT = {"S": "STEM", "H": "Humanities", "SS": "Social Science", "O": "Other"}
CMMLU_SUBJECTS: dict[str, tuple[str, bool]] = {}
for _item in _SPEC.replace("\n", " ").split(";"):
    _subj, _code = _item.split()
    CMMLU_SUBJECTS[_subj] = (_CAT[_code.rstrip("*")], _code.endswith("*"))

_COLS = ("Question", "A", "B", "C", "D", "Answer")


def _rows(path: Path) -> list[tuple[str, list[str], str]]:
    out = []
    for line, r in read_csv_dicts(path, _COLS):
        ans = r["Answer"].strip().upper()
        if ans not in ("A", "B", "C", "D"):
            raise DatasetError(f"data file {path} line {line}: Answer {r['Answer']!r} is not one of A-D")
        out.append((r["Question"], [r[c] for c in "ABCD"], ans))
    return out


class CMMLULoader(Loader):
    """``test/<subject>.csv`` per subject; shots from ``dev``."""

    name = "cmmlu-csv"
    version = "1"

    def _paths(self, bench: Benchmark, subject: str) -> tuple[Path, Path]:
        root = data_root(bench, "test/<subject>.csv")
        test = require_file(root / "test" / f"{subject}.csv", "cmmlu/test/<subject>.csv")
        return test, root / "dev" / f"{subject}.csv"

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
            category, china = CMMLU_SUBJECTS[subject]
            shots: list[tuple[str, list[str], str, str | None]] = []
            if bench.few_shot_num > 0:
                require_file(dev, "cmmlu/dev/<subject>.csv")
                pool = [(q, o, a, None) for q, o, a in _rows(dev)]
                shots = select_shots(pool, bench.few_shot_num, bench.args, subject)
            ids = IdMaker()
            for q, opts, ans in _rows(test):
                samples.append(
                    mcq_record(
                        ids(f"{subject}/{content_id(q, *opts)}"),
                        q,
                        opts,
                        ans,
                        subset=subject,
                        category=category,
                        shots=shots,
                        meta={"subject": subject, "china_specific": china},
                    )
                )
        return samples


@BENCHMARKS.register("cmmlu")
class CMMLU(MultipleChoiceBenchmark):
    name = "cmmlu"
    version = "1"
    data_subdir = "cmmlu"
    subsets = tuple(sorted(CMMLU_SUBJECTS))
    default_shots = 0
    zh = True
    loader = CMMLULoader()
