"""User datasets: ``general_mcq`` (multiple choice, letter accuracy) and ``general_qa`` (free-text answers).

Files live in ``--dataset-args '{"general_mcq": {"local_path": "<folder>"}}'`` (``dataset_path`` also works) or,
without it, in ``<dataset-dir>/general_mcq/`` / ``<dataset-dir>/general_qa/``. Every subset is one file; when
``subset_list`` is not given, the subsets are discovered from the folder.

general_mcq
    ``<subset>_val.jsonl`` or ``<subset>_val.csv`` (evaluated) and optionally ``<subset>_dev.*`` (few-shot pool).
    Fields: ``question``, option columns ``A``, ``B``, ... (2 to 26, contiguous; empty trailing columns ignored),
    ``answer`` (a letter), optional ``id``. ``language: zh`` switches the prompt to ``答案：X``.
general_qa
    ``<subset>.jsonl`` or ``<subset>.csv``. Fields: ``question`` (or ``query`` / ``prompt``), ``answer`` (or
    ``response`` / ``reference``; in JSONL a list of acceptable references is allowed), optional ``system`` and
    ``id``. Each output (reasoning stripped) is scored by exact match, BLEU-4 and ROUGE-L F1; the sample value is
    the metric named by ``metric`` (``exact_match`` by default, or ``bleu`` / ``rouge_l``) and the aggregate
    reports the means of all three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalscope.errors import DatasetError
from evalscope.eval.benchmarks._common import (
    LETTERS,
    BaseBenchmark,
    IdMaker,
    MultipleChoiceBenchmark,
    content_id,
    data_root,
    mcq_record,
    read_csv_dicts,
    read_jsonl,
    select_shots,
)
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Loader, Record, Sample, ScoreResult
from evalscope.eval.scoring.extract import strip_reasoning
from evalscope.eval.scoring.stats import mean_with_stderr
from evalscope.eval.scoring.text_metrics import bleu, exact_match, rouge_l


def _root(bench: Benchmark, layout: str) -> Path:
    local = bench.args.get("local_path") or bench.args.get("dataset_path")
    if local:
        p = Path(str(local)).expanduser()
        if not p.is_dir():
            raise DatasetError(f"{bench.name}: local_path {p} is not a folder", f"it must contain {layout}")
        return p
    return data_root(bench, layout)


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    return [(ln, dict(r)) for ln, r in read_csv_dicts(path)]


def _find(root: Path, stem: str) -> Path | None:
    for ext in (".jsonl", ".csv"):
        if (root / f"{stem}{ext}").is_file():
            return root / f"{stem}{ext}"
    return None


def _discover(root: Path, suffix: str) -> list[str]:
    names = set()
    for p in root.iterdir():
        if p.is_file() and p.suffix in (".jsonl", ".csv") and p.stem.endswith(suffix):
            names.add(p.stem[: len(p.stem) - len(suffix)] if suffix else p.stem)
    return sorted(n for n in names if n)


class GeneralMcqLoader(Loader):
    """``<subset>_val.jsonl|csv`` per subset (discovered when not listed); shots from ``<subset>_dev.*``."""

    name = "general-mcq-files"
    version = "1"

    def _subsets(self, bench: Benchmark, root: Path) -> list[str]:
        if bench.args.get("subset_list"):
            return list(bench.subset_list)
        found = _discover(root, "_val")
        if not found:
            raise DatasetError(f"general_mcq: no <subset>_val.jsonl or <subset>_val.csv files in {root}")
        return found

    def _val(self, root: Path, subset: str) -> Path:
        p = _find(root, f"{subset}_val")
        if p is None:
            raise DatasetError(f"general_mcq: file {root / (subset + '_val.jsonl')} (or .csv) not found")
        return p

    def data_files(self, bench: Benchmark) -> list[Path]:
        root = _root(bench, "<subset>_val.jsonl|csv")
        out = [self._val(root, s) for s in self._subsets(bench, root)]
        if bench.few_shot_num > 0:
            out += [p for s in self._subsets(bench, root) if (p := _find(root, f"{s}_dev")) is not None]
        return out

    @staticmethod
    def _parse(path: Path, line: int, r: dict[str, Any]) -> tuple[str | None, str, list[str], str]:
        q = r.get("question")
        if q is None or not str(q).strip():
            raise DatasetError(f"data file {path} line {line}: field 'question' is missing or empty")
        opts: list[str] = []
        for letter in LETTERS:
            v = r.get(letter)
            if v is None or str(v).strip() == "":
                break
            opts.append(str(v))
        if len(opts) < 2:
            raise DatasetError(
                f"data file {path} line {line}: needs option fields A, B (at least two options)"
            )
        ans = str(r.get("answer", "")).strip().upper()
        if len(ans) != 1 or ans not in LETTERS[: len(opts)]:
            raise DatasetError(
                f"data file {path} line {line}: answer {r.get('answer')!r} is not one of {LETTERS[: len(opts)]}"
            )
        rid = str(r["id"]).strip() if r.get("id") not in (None, "") else None
        return rid, str(q), opts, ans

    def load(self, bench: Benchmark) -> list[Record]:
        root = _root(bench, "<subset>_val.jsonl|csv")
        out: list[Record] = []
        for subset in self._subsets(bench, root):
            path = self._val(root, subset)
            shots: list[tuple[str, list[str], str, str | None]] = []
            if bench.few_shot_num > 0:
                dev = _find(root, f"{subset}_dev")
                if dev is None:
                    raise DatasetError(
                        f"general_mcq: few_shot_num > 0 but {root / (subset + '_dev.jsonl')} not found"
                    )
                pool = [
                    (q, o, a, None) for _i, q, o, a in (self._parse(dev, ln, r) for ln, r in _records(dev))
                ]
                shots = select_shots(pool, bench.few_shot_num, bench.args, subset)
            ids = IdMaker()
            for ln, r in _records(path):
                rid, q, opts, ans = self._parse(path, ln, r)
                sid = ids(f"{subset}/{rid or content_id(q, *opts)}")
                out.append(mcq_record(sid, q, opts, ans, subset=subset, shots=shots))
        return out


@BENCHMARKS.register("general_mcq")
class GeneralMCQ(MultipleChoiceBenchmark):
    name = "general_mcq"
    version = "1"
    data_subdir = "general_mcq"
    subsets = ("default",)
    open_subsets = True
    default_shots = 0

    def chinese(self) -> bool:
        return str(self.args.get("language", "en")).lower() in ("zh", "cn", "chinese")

    loader = GeneralMcqLoader()


_Q_KEYS = ("question", "query", "prompt")
_A_KEYS = ("answer", "response", "reference")
QA_METRICS = ("exact_match", "bleu", "rouge_l")


@BENCHMARKS.register("general_qa")
class GeneralQA(BaseBenchmark):
    name = "general_qa"
    version = "1"
    data_subdir = "general_qa"
    subsets = ("default",)
    open_subsets = True
    default_shots = 0

    def __init__(self, dataset_dir: Path | None = None, args: dict[str, Any] | None = None) -> None:
        super().__init__(dataset_dir, args)
        self.metric_name = str(self.args.get("metric", "exact_match"))
        if self.metric_name not in QA_METRICS:
            raise DatasetError(
                f"general_qa: unknown metric {self.metric_name!r}", f"use one of {', '.join(QA_METRICS)}"
            )

    def _subsets(self, root: Path) -> list[str]:
        if self.args.get("subset_list"):
            return list(self.subset_list)
        found = [s for s in _discover(root, "") if not s.endswith(("_dev", "_train"))]
        if not found:
            raise DatasetError(f"general_qa: no <subset>.jsonl or <subset>.csv files in {root}")
        return found

    def _file(self, root: Path, subset: str) -> Path:
        p = _find(root, subset)
        if p is None:
            raise DatasetError(f"general_qa: file {root / (subset + '.jsonl')} (or .csv) not found")
        return p

    def data_files(self) -> list[Path]:
        root = _root(self, "<subset>.jsonl|csv")
        return [self._file(root, s) for s in self._subsets(root)]

    def load(self) -> list[Sample]:
        if self.few_shot_num > 0:
            from evalscope.errors import ConfigError

            raise ConfigError("general_qa does not support few-shot examples", "set few_shot_num to 0")
        root = _root(self, "<subset>.jsonl|csv")
        out: list[Sample] = []
        for subset in self._subsets(root):
            path = self._file(root, subset)
            ids = IdMaker()
            for ln, r in _records(path):
                qk = next((k for k in _Q_KEYS if r.get(k) not in (None, "")), None)
                ak = next((k for k in _A_KEYS if r.get(k) not in (None, "")), None)
                if qk is None or ak is None:
                    raise DatasetError(
                        f"data file {path} line {ln}: needs a question field ({'/'.join(_Q_KEYS)}) "
                        f"and an answer field ({'/'.join(_A_KEYS)})"
                    )
                q = str(r[qk])
                refs = [str(x) for x in r[ak]] if isinstance(r[ak], list) else [str(r[ak])]
                msgs: list[dict[str, Any]] = []
                if r.get("system"):
                    msgs.append({"role": "system", "content": str(r["system"])})
                msgs.append({"role": "user", "content": q})
                rid = str(r["id"]).strip() if r.get("id") not in (None, "") else content_id(q)
                out.append(Sample(id=ids(f"{subset}/{rid}"), messages=msgs, gold=refs, subset=subset))
        return out

    def score(self, sample: Sample, output: str) -> ScoreResult:
        pred = strip_reasoning(output or "").strip()
        refs = list(sample.gold) if isinstance(sample.gold, list) else [str(sample.gold)]
        if not pred:
            return ScoreResult(0.0, extracted="", parsed=False, detail=dict.fromkeys(QA_METRICS, 0.0))
        m = {"exact_match": exact_match(pred, refs), "bleu": bleu(pred, refs), "rouge_l": rouge_l(pred, refs)}
        return ScoreResult(m[self.metric_name], extracted=pred, detail=m)

    #: ``--judge-strategy llm|auto|llm_recall`` may score it with the judge (:meth:`ajudge`) instead of a metric.
    judge_capable = True

    async def ajudge(self, sample: Sample, output: str, judge: Any) -> ScoreResult:
        """The judge decides whether the answer matches the reference (1 / 0); rule metrics stay in detail."""
        from evalscope.eval.scoring.judge import QA_TEMPLATE, ask_judge, fill, parse_correct

        rule = self.score(sample, output)
        pred = strip_reasoning(output or "").strip()
        refs = list(sample.gold) if isinstance(sample.gold, list) else [str(sample.gold)]
        question = str(sample.messages[-1].get("content", ""))
        prompt = fill(QA_TEMPLATE, question=question, reference=" | ".join(refs), answer=pred)
        ok, info = await ask_judge(judge, prompt, parse_correct, sample.id)
        detail = {**rule.detail, "judge": info, "rule_score": rule.value}
        if ok is None:
            return ScoreResult(0.0, extracted=pred, parsed=False, status="judge_null", detail=detail)
        return ScoreResult(1.0 if ok else 0.0, extracted=pred, detail=detail)

    def aggregate(self, results: list[tuple[Sample, int, ScoreResult]]) -> dict[str, Any]:
        agg = super().aggregate(results)
        if any("judge" in r.detail for _s, _rep, r in results):
            agg["metric"] = "llm_judge"
            agg["metrics"] = {
                k: mean_with_stderr([float(r.detail.get(k, 0.0)) for _s, _rep, r in results])[0]
                for k in QA_METRICS
            }
            return agg
        agg["metric"] = self.metric_name
        agg["metrics"] = {
            k: mean_with_stderr([float(r.detail.get(k, 0.0)) for _s, _rep, r in results])[0]
            for k in QA_METRICS
        }
        return agg

    def reference_output(self, sample: Sample, style: int = 0) -> str:
        ref = str(sample.gold[0]) if isinstance(sample.gold, list) else str(sample.gold)
        return ref if style % 2 == 0 else f"<think>Let me recall.</think>{ref}"

    def wrong_output(self, sample: Sample, style: int = 0) -> str:
        return "Xyzzy plugh quux." if style % 2 == 0 else "<think>hmm</think>Zzyzx frobnicate."
