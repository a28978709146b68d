"""BIG-Bench Hard (Suzgun et al.): 27 tasks (6,511 examples) with the official 3-shot chain-of-thought prompts.

Layout (the original repo): ``<dataset-dir>/bbh/bbh/<task>.json`` (``{"examples": [{"input", "target"}]}``) and
``<dataset-dir>/bbh/cot-prompts/<task>.txt``. The prompt is the official file (canary header removed: the task
description and three ``Q: ... A: Let's think step by step. ... So the answer is X.`` exemplars) followed by
``Q: <input>\\nA: Let's think step by step.``; a one-line instruction asks to finish with "So the answer is".
With ``few_shot_num: 0`` only the task description is kept.

Scoring takes the text after the last "So the answer is" (fall-backs: "the answer is", then an ``ANSWER:``
line). Multiple-choice tasks compare the option letter (``(B)``, ``B``, ``**B**``...); the few multiple-choice
examples whose target is option text instead of a letter are mapped to the letter of that option, or, in the
three upstream examples whose options were split at commas (e.g. target ``Monsters, Inc``), compared as text. Free-form
tasks compare case-insensitively after removing markdown, quotes and a trailing period (``dyck_languages``
ignores spaces, numeric tasks compare numbers).
"""

from __future__ import annotations

import re
from pathlib import Path

from evalscope.errors import DatasetError
from evalscope.eval.benchmarks._common import (
    BaseBenchmark,
    IdMaker,
    content_id,
    data_root,
    read_json,
    read_text,
    require_file,
    user,
)
from evalscope.eval.benchmarks.base import (
    BENCHMARKS,
    Benchmark,
    Loader,
    PromptTemplate,
    Record,
    Sample,
    Scorer,
    ScoreResult,
)
from evalscope.eval.scoring.extract import extract_after_phrase, strip_reasoning

MC_TASKS = (
    "date_understanding",
    "disambiguation_qa",
    "geometric_shapes",
    "hyperbaton",
    "logical_deduction_five_objects",
    "logical_deduction_seven_objects",
    "logical_deduction_three_objects",
    "movie_recommendation",
    "penguins_in_a_table",
    "reasoning_about_colored_objects",
    "ruin_names",
    "salient_translation_error_detection",
    "snarks",
    "temporal_sequences",
    "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects",
    "tracking_shuffled_objects_three_objects",
)
FREE_TASKS = (
    "boolean_expressions",
    "causal_judgement",
    "dyck_languages",
    "formal_fallacies",
    "multistep_arithmetic_two",
    "navigate",
    "object_counting",
    "sports_understanding",
    "web_of_lies",
    "word_sorting",
)
TASKS = tuple(sorted(MC_TASKS + FREE_TASKS))

INSTRUCTION = (
    'Answer the last question like the examples. End your response with "So the answer is <answer>."'
)
_OPTION = re.compile(r"^\(([A-Z])\)[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_LETTER = re.compile(r"^[\s*_`$(\[]*(?:\\boxed\{|\\text\{)?\(?([A-Z])\)?(?![A-Za-z0-9])")
_FLIP = {"true": "False", "false": "True", "yes": "No", "no": "Yes", "valid": "invalid", "invalid": "valid"}


def cot_prompt(text: str, shots: int) -> str:
    """The official prompt file without its canary header, truncated to ``shots`` exemplars."""
    lines = text.splitlines()
    for i, line in enumerate(lines[:5]):
        if line.strip() == "-----":  # the canary header ends with a line of dashes
            text = "\n".join(lines[i + 1 :])
            break
    text = text.strip()
    blocks = re.split(r"\n\s*\n(?=Q:)", text)
    head, examples = blocks[0], blocks[1:]
    if head.startswith("Q:"):
        head, examples = "", blocks
    kept = examples[:shots]
    return "\n\n".join([b for b in (head, *kept) if b])


def _norm(s: str) -> str:
    s = s.strip().strip("*_`\"' ").rstrip(".").strip().strip("*_`\"' ")
    return " ".join(s.lower().split())


def _num(s: str) -> str | None:
    m = re.search(r"-?\d+(?:\.\d+)?", s.replace(",", ""))
    return m.group(0) if m else None


class BbhLoader(Loader):
    """``bbh/<task>.json`` examples; the task's chain-of-thought exemplars (``cot-prompts/<task>.txt``, cut to
    ``few_shot_num``) travel as the record's preamble."""

    name = "bbh-json"
    version = "1"

    def _paths(self, bench: Benchmark, task: str) -> tuple[Path, Path]:
        root = data_root(bench, "bbh/<task>.json and cot-prompts/<task>.txt")
        data = require_file(root / "bbh" / f"{task}.json", "bbh/bbh/<task>.json")
        prompt = require_file(root / "cot-prompts" / f"{task}.txt", "bbh/cot-prompts/<task>.txt")
        return data, prompt

    def data_files(self, bench: Benchmark) -> list[Path]:
        return [p for t in bench.subset_list for p in self._paths(bench, t)]

    def load(self, bench: Benchmark) -> list[Record]:
        if bench.few_shot_num > 3:
            from evalscope.errors import ConfigError

            raise ConfigError("bbh has three official exemplars per task", "set few_shot_num to 0-3")
        out: list[Record] = []
        for task in bench.subset_list:
            data_path, prompt_path = self._paths(bench, task)
            doc = read_json(data_path)
            examples = doc.get("examples") if isinstance(doc, dict) else None
            if not isinstance(examples, list) or not examples:
                raise DatasetError(
                    f"data file {data_path}: expected {{'examples': [...]}} with at least one example"
                )
            prefix = cot_prompt(read_text(prompt_path), bench.few_shot_num)
            ids = IdMaker()
            for i, ex in enumerate(examples):
                if not isinstance(ex, dict) or "input" not in ex or "target" not in ex:
                    raise DatasetError(f"data file {data_path} example {i + 1}: needs 'input' and 'target'")
                inp, target = str(ex["input"]), str(ex["target"]).strip()
                meta: dict[str, object] = {"task": task, "mc": task in MC_TASKS, "target": target}
                gold = target
                if task in MC_TASKS:
                    options = dict(_OPTION.findall(inp))
                    meta["letters"] = "".join(sorted(options))
                    m = re.fullmatch(r"\(([A-Z])\)", target)
                    if m:
                        gold = m.group(1)
                        letters = set(options) | {gold}
                        meta["letters"] = "".join(sorted(letters)) if len(letters) > 1 else "AB"
                    else:
                        hits = [k for k, v in options.items() if _norm(v) == _norm(target)]
                        if len(hits) == 1:
                            gold = hits[0]
                        else:  # upstream examples whose options were split at commas: compare the text
                            meta["mc"] = False
                out.append(
                    Record(
                        ids(f"{task}/{content_id(inp)}"), inp, gold, subset=task, meta=meta, preamble=prefix
                    )
                )
        return out


class BbhPrompt(PromptTemplate):
    """Instruction, the exemplars, then ``Q: <input>`` and ``A: Let's think step by step.``"""

    name = "bbh-cot"
    version = "1"

    def render(self, record: Record, bench: Benchmark) -> Sample:
        content = f"{INSTRUCTION}\n\n{record.preamble}\n\nQ: {record.question}\nA: Let's think step by step."
        return Sample(
            id=record.id,
            messages=user(content),
            gold=record.gold,
            subset=record.subset,
            meta=dict(record.meta),
        )


class BbhScorer(Scorer):
    """The phrase after "So the answer is" (or "answer:"): a letter for multiple-choice tasks, else the
    normalised text (numbers compared as numbers, Dyck sequences without spaces)."""

    name = "bbh-answer"
    version = "1"

    @staticmethod
    def answer_text(output: str) -> tuple[str | None, str]:
        body = strip_reasoning(output or "")
        for phrase, how in (("So the answer is", "so_the_answer_is"), ("the answer is", "the_answer_is")):
            got = extract_after_phrase(body, phrase)
            if got:
                return got, how
        m = list(re.finditer(r"(?i)\banswer\s*[:：]\s*(.+)", body))
        if m:
            return m[-1].group(1).strip(), "answer_marker"
        return None, "none"

    def score(self, sample: Sample, output: str) -> ScoreResult:
        ans, how = self.answer_text(output)
        if ans is None:
            return ScoreResult(0.0, extracted=None, parsed=False, detail={"extraction": how})
        gold = str(sample.gold)
        if sample.meta.get("mc"):
            m = _LETTER.match(ans)
            letters = str(sample.meta.get("letters") or "")
            letter = m.group(1) if m and (not letters or m.group(1) in letters) else None
            if letter is None:  # option text instead of a letter
                opts = {v: k for k, v in _OPTION.findall(sample.messages[-1]["content"].rsplit("Q: ", 1)[-1])}
                letter = next((k for v, k in opts.items() if _norm(v) == _norm(ans)), None)
            return ScoreResult(
                1.0 if letter == gold else 0.0,
                extracted=letter,
                parsed=letter is not None,
                detail={"extraction": how},
            )
        task = str(sample.meta.get("task"))
        a, g = _norm(ans), _norm(gold)
        if task == "dyck_languages":
            ok = a.replace(" ", "") == g.replace(" ", "")
        elif task in ("object_counting", "multistep_arithmetic_two"):
            n = _num(a)
            ok = n is not None and float(n) == float(g)
        else:
            ok = a == g
        return ScoreResult(1.0 if ok else 0.0, extracted=ans, detail={"extraction": how})


@BENCHMARKS.register("bbh")
class BBH(BaseBenchmark):
    name = "bbh"
    version = "1"
    data_subdir = "bbh"
    subsets = TASKS
    default_shots = 3
    default_generation = {"max_tokens": 2048}
    loader = BbhLoader()
    prompt = BbhPrompt()
    scorer = BbhScorer()

    def _render(self, answer: str, decoy: str, style: int, mc: bool) -> str:
        s = style % 5
        shown = f"({answer})" if mc else answer
        dec = f"({decoy})" if mc else decoy
        if s == 0:
            return f"Let's think step by step.\nThe options include {dec}, which fails the check. So the answer is {shown}."
        if s == 1:
            return f"Step 1: analyse.\nStep 2: conclude.\n\nSo the answer is **{shown}**."
        if s == 2:
            return f"<think>So the answer is {dec}.</think>\nSo the answer is {shown}"
        if s == 3:
            return f"One could think the answer is {dec}, but so the answer is {answer}."
        return f"First guess: so the answer is {dec}. On reflection, so the answer is {shown}."

    def reference_output(self, sample: Sample, style: int = 0) -> str:
        mc = bool(sample.meta.get("mc"))
        gold = str(sample.gold) if mc else str(sample.meta.get("target", sample.gold))
        return self._render(gold, self._wrong(sample), style, mc)

    def wrong_output(self, sample: Sample, style: int = 0) -> str:
        mc = bool(sample.meta.get("mc"))
        gold = str(sample.gold) if mc else str(sample.meta.get("target", sample.gold))
        return self._render(self._wrong(sample), gold, style, mc)

    def _wrong(self, sample: Sample) -> str:
        gold = str(sample.gold)
        if sample.meta.get("mc"):
            letters = str(sample.meta.get("letters") or "ABCD")
            return next(c for c in letters if c != gold)
        if gold.lower() in _FLIP:
            return _FLIP[gold.lower()]
        if re.fullmatch(r"-?\d+", gold):
            return str(int(gold) + 1)
        return gold + " x"
