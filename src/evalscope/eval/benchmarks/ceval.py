"""C-Eval (Huang et al.): 52 subjects; the ``val`` split is evaluated (``test`` has no public labels), ``dev``
(5 per subject, with explanations) gives few-shot examples.

Layout (the original ``ceval-exam`` zip): ``<dataset-dir>/ceval/val/<subject>_val.csv`` and
``ceval/dev/<subject>_dev.csv`` with header ``id,question,A,B,C,D,answer[,explanation]``. Categories are the
official four: STEM, Social Science, Humanities, Other. Few-shot examples include the dev explanation as the
worked solution unless ``few_shot_explanations: false``. Sample ids are ``<subject>/<id>``.
"""

from __future__ import annotations

from pathlib import Path

from evalscope.errors import DatasetError
from evalscope.eval.benchmarks._common import (
    IdMaker,
    MultipleChoiceBenchmark,
    data_root,
    mcq_record,
    read_csv_dicts,
    require_file,
    select_shots,
)
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, Record

_STEM = (
    "computer_network operating_system computer_architecture college_programming college_physics "
    "college_chemistry advanced_mathematics probability_and_statistics discrete_mathematics electrical_engineer "
    "metrology_engineer high_school_mathematics high_school_physics high_school_chemistry high_school_biology "
    "middle_school_mathematics middle_school_biology middle_school_physics middle_school_chemistry "
    "veterinary_medicine"
)
_SOCIAL = (
    "college_economics business_administration marxism mao_zedong_thought education_science "
    "teacher_qualification high_school_politics high_school_geography middle_school_politics "
    "middle_school_geography"
)
_HUMANITIES = (
    "modern_chinese_history ideological_and_moral_cultivation logic law chinese_language_and_literature "
    "art_studies professional_tour_guide legal_professional high_school_chinese high_school_history "
    "middle_school_history"
)
_OTHER = (
    "civil_servant sports_science plant_protection basic_medicine clinical_medicine urban_and_rural_planner "
    "accountant fire_engineer environmental_impact_assessment_engineer tax_accountant physician"
)
CEVAL_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(_STEM.split(), "STEM"),
    **dict.fromkeys(_SOCIAL.split(), "Social Science"),
    **dict.fromkeys(_HUMANITIES.split(), "Humanities"),
    **dict.fromkeys(_OTHER.split(), "Other"),
}

_COLS = ("id", "question", "A", "B", "C", "D", "answer")


def _rows(path: Path) -> list[tuple[str, str, list[str], str, str | None]]:
    out = []
    for line, r in read_csv_dicts(path, _COLS):
        ans = r["answer"].strip().upper()
        if ans not in ("A", "B", "C", "D"):
            raise DatasetError(f"data file {path} line {line}: answer {r['answer']!r} is not one of A-D")
        out.append(
            (r["id"].strip(), r["question"], [r[c] for c in "ABCD"], ans, r.get("explanation") or None)
        )
    return out


class CEvalLoader(Loader):
    """``<split>/<subject>_<split>.csv`` (val by default); shots (with explanations) from ``dev``."""

    name = "ceval-csv"
    version = "1"

    def _split(self, bench: Benchmark) -> str:
        split = str(bench.args.get("split", "val"))
        if split not in ("val", "dev"):
            raise DatasetError(
                f"ceval split {split!r} cannot be scored",
                "the test split has no public labels; use split 'val'",
            )
        return split

    def _paths(self, bench: Benchmark, subject: str) -> tuple[Path, Path]:
        split = self._split(bench)
        root = data_root(bench, f"{split}/<subject>_{split}.csv")
        test = require_file(root / split / f"{subject}_{split}.csv", f"ceval/{split}/<subject>_{split}.csv")
        return test, root / "dev" / f"{subject}_dev.csv"

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
        expl = bool(bench.args.get("few_shot_explanations", True))
        for subject in bench.subset_list:
            test, dev = self._paths(bench, subject)
            shots: list[tuple[str, list[str], str, str | None]] = []
            if bench.few_shot_num > 0:
                require_file(dev, "ceval/dev/<subject>_dev.csv")
                pool = [(q, o, a, e if expl else None) for _i, q, o, a, e in _rows(dev)]
                shots = select_shots(pool, bench.few_shot_num, bench.args, subject)
            ids = IdMaker()
            for rid, q, opts, ans, _e in _rows(test):
                samples.append(
                    mcq_record(
                        ids(f"{subject}/{rid}"),
                        q,
                        opts,
                        ans,
                        subset=subject,
                        category=CEVAL_CATEGORIES[subject],
                        shots=shots,
                        meta={"subject": subject},
                    )
                )
        return samples


@BENCHMARKS.register("ceval")
class CEval(MultipleChoiceBenchmark):
    name = "ceval"
    version = "1"
    data_subdir = "ceval"
    subsets = tuple(sorted(CEVAL_CATEGORIES))
    default_shots = 0
    zh = True
    loader = CEvalLoader()
