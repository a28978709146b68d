"""Scoring against a truth read straight from the raw data files, with code that shares nothing with the loaders.

``test_eval_accuracy_truth.py`` renders its expected replies from the loader's own ``sample.gold``, so a loader
that maps gold to the wrong letter still passes. Here the correct answer of each question comes from the
original file (CSV / JSON / JSONL as published; see ../shared/datasets/SOURCES.md), parsed below with the
standard library only. The loader is used for what a model sees (the prompt) and for scoring; the test finds
each prompt's raw row by its question text, reads the letter of the raw correct option from the prompt, and
checks that a reply naming it scores 1 and a reply naming another option scores 0.

Math replies are written in forms that differ from the gold but are equal (thousands separators, ``.00``,
``\\frac`` vs ``/`` vs a decimal, ``\\boxed{x = 3}``, a unit, the answer as the last of several numbers), and
in forms that look alike but differ; a correct grader must accept the first and reject the second.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Sample
from evalscope.eval.runner import _ensure_registered, limit_samples

pytestmark = pytest.mark.integration
_ensure_registered(["__all__"])
LIMIT = 60
MATH_LIMIT = 200  # more answers, so that the rarer shapes (fractions, roots, pairs, multiples of pi) occur

# ----------------------------------------------------------------------------------------------- raw readers
# Each returns (question text, correct option text | final answer) pairs exactly as the files give them.


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def raw_arc(root: Path) -> list[tuple[str, str]]:
    out = []
    for sub in ("ARC-Easy", "ARC-Challenge"):
        for o in _jsonl(root / "arc" / sub / f"{sub}-Test.jsonl"):
            choices = {c["label"]: c["text"] for c in o["question"]["choices"]}
            out.append((o["question"]["stem"], choices[o["answerKey"]]))
    return out


def _csv_mcq(files: list[Path], q: str, ans: str) -> list[tuple[str, str]]:
    out = []
    for path in files:
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                out.append((row[q], row[row[ans].strip()]))
    return out


def raw_ceval(root: Path) -> list[tuple[str, str]]:
    return _csv_mcq(sorted((root / "ceval" / "val").glob("*_val.csv")), "question", "answer")


def raw_cmmlu(root: Path) -> list[tuple[str, str]]:
    return _csv_mcq(sorted((root / "cmmlu" / "test").glob("*.csv")), "Question", "Answer")


def raw_truthful_qa(root: Path) -> list[tuple[str, str]]:
    data = json.loads((root / "truthfulqa" / "data" / "v1" / "mc_task.json").read_text(encoding="utf-8"))
    return [(o["question"], next(t for t, v in o["mc1_targets"].items() if v == 1)) for o in data]


def raw_gsm8k(root: Path) -> list[tuple[str, str]]:
    return [
        (o["question"], o["answer"].split("####")[-1].strip().replace(",", ""))
        for o in _jsonl(root / "gsm8k" / "test.jsonl")
    ]


def raw_math_500(root: Path) -> list[tuple[str, str]]:
    return [(o["problem"], o["answer"]) for o in _jsonl(root / "math500" / "test.jsonl")]


def raw_competition_math(root: Path) -> list[tuple[str, str]]:
    with (root / "math" / "simple-evals" / "math_test.csv").open(encoding="utf-8", newline="") as f:
        return [(row["Question"], row["Answer"]) for row in csv.DictReader(f)]


def raw_truthful_qa_mc2(root: Path) -> list[tuple[str, str]]:
    """(question, the true option texts joined by a NUL) for MC2 (select every true option)."""
    data = json.loads((root / "truthfulqa" / "data" / "v1" / "mc_task.json").read_text(encoding="utf-8"))
    return [(o["question"], "\0".join(t for t, v in o["mc2_targets"].items() if v == 1)) for o in data]


def raw_bbh(root: Path) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """(input, target) rows of every task, and each input's task's distinct targets (for wrong replies)."""
    rows: list[tuple[str, str]] = []
    alternatives: dict[str, list[str]] = {}
    for path in sorted((root / "bbh" / "bbh").glob("*.json")):
        examples = json.loads(path.read_text(encoding="utf-8"))["examples"]
        targets = sorted({e["target"] for e in examples})
        for e in examples:
            rows.append((e["input"], e["target"]))
            alternatives[e["input"].strip()] = targets
    return rows, alternatives


MCQ = {"arc": raw_arc, "ceval": raw_ceval, "cmmlu": raw_cmmlu, "truthful_qa": raw_truthful_qa}
MATH = {"gsm8k": raw_gsm8k, "math_500": raw_math_500, "competition_math": raw_competition_math}

# ------------------------------------------------------------------------------------------------- matching


def _prompt(s: Sample) -> str:
    users = [m for m in s.messages if m.get("role") == "user"]
    c = users[-1]["content"] if users else ""
    return c if isinstance(c, str) else json.dumps(c, ensure_ascii=False)


def match_rows(
    samples: list[Sample], rows: list[tuple[str, str]], after: str | None = None
) -> list[tuple[Sample, str]]:
    """(sample, raw answer) for samples whose prompt holds exactly one raw question (longest match wins).

    Questions that appear twice in the raw file with different answers are ambiguous and left out.
    """
    answers: dict[str, set[str]] = {}
    for q, a in rows:
        answers.setdefault(q.strip(), set()).add(a.strip())
    by_len = sorted((q for q in answers if len(q) >= 8), key=len, reverse=True)
    out = []
    for s in samples:
        p = _prompt(s)
        if after is not None:  # few-shot exemplars precede the question: look only at the last part
            p = p.rsplit(after, 1)[-1]
        q = next((q for q in by_len if q in p), None)
        if q is not None and len(answers[q]) == 1:
            out.append((s, next(iter(answers[q]))))
    return out


def shown_letter(prompt: str, option: str) -> str | None:
    """The letter the prompt shows in front of ``option`` (``A) text`` / ``A. text`` lines)."""
    hits = re.findall(r"(?m)^\(?([A-Z])[\)\.:：]\s*" + re.escape(option.strip()) + r"\s*$", prompt)
    return hits[0] if len(hits) == 1 else None


def _load(name: str, root: Path) -> tuple[Benchmark, list[Sample]]:
    bench = BENCHMARKS.get(name)(root, {})
    return bench, limit_samples(bench.load(), LIMIT)


# --------------------------------------------------------------------------------------------------- MCQ


@pytest.mark.parametrize("name", sorted(MCQ))
def test_mcq_gold_is_the_raw_files_answer(name: str, shared_datasets: Path) -> None:
    bench, samples = _load(name, shared_datasets)
    # TruthfulQA MC2 is "select all true" with partial credit: the single-answer check is MC1's.
    samples = [s for s in samples if s.subset != "MC2"]
    pairs = match_rows(samples, MCQ[name](shared_datasets))
    assert len(pairs) >= 0.9 * len(samples), (
        f"{name}: only {len(pairs)}/{len(samples)} prompts found in the raw file"
    )
    marker = "答案：" if name in ("ceval", "cmmlu") else "ANSWER: "
    rng = random.Random(name)
    bad = []
    for s, option in pairs:
        p = _prompt(s)
        letter = shown_letter(p, option)
        assert letter is not None, (
            f"{name} {s.id}: the raw correct option {option!r} is not shown once in the prompt"
        )
        others = [x for x in re.findall(r"(?m)^\(?([A-Z])[\)\.:：]", p) if x != letter]
        wrong = rng.choice(others)
        right_score = bench.score(s, f"Thinking about it.\n{marker}{letter}").value
        wrong_score = bench.score(s, f"Thinking about it.\n{marker}{wrong}").value
        if right_score != 1.0 or wrong_score != 0.0:
            bad.append((s.id, option[:40], letter, right_score, wrong, wrong_score))
    assert not bad, f"{name}: {len(bad)}/{len(pairs)} scored against the raw file's answer, e.g. {bad[:3]}"


def test_truthful_qa_mc2_true_set_is_the_raw_files(shared_datasets: Path) -> None:
    bench, samples = _load("truthful_qa", shared_datasets)
    samples = [s for s in samples if s.subset == "MC2"]
    pairs = match_rows(samples, raw_truthful_qa_mc2(shared_datasets))
    assert samples and len(pairs) >= 0.9 * len(samples), f"only {len(pairs)}/{len(samples)} prompts found"
    bad = []
    for s, joined in pairs:
        p = _prompt(s)
        true = {shown_letter(p, t) for t in joined.split("\0")}
        assert None not in true, f"{s.id}: a raw true option is not shown once in the prompt"
        false = sorted(set(re.findall(r"(?m)^([A-Z])\)", p)) - true)
        all_true = bench.score(s, "ANSWER: " + ", ".join(sorted(true))).value  # type: ignore[arg-type]
        only_false = bench.score(s, "ANSWER: " + ", ".join(false)).value if false else 0.0
        if all_true != 1.0 or only_false != 0.0:
            bad.append((s.id, sorted(true), all_true, false, only_false))  # type: ignore[arg-type]
    assert not bad, f"MC2: {len(bad)}/{len(pairs)} scored against the raw true set, e.g. {bad[:3]}"


def test_bbh_target_is_the_raw_files(shared_datasets: Path) -> None:
    bench, samples = _load("bbh", shared_datasets)
    rows, alternatives = raw_bbh(shared_datasets)
    pairs = match_rows(samples, rows, after="Q: ")
    assert len(pairs) >= 0.9 * len(samples), f"only {len(pairs)}/{len(samples)} prompts found"
    rng = random.Random("bbh")
    bad = []
    for s, target in pairs:
        q = _prompt(s).rsplit("Q: ", 1)[-1]
        key = max((k for k in alternatives if k in q), key=len)
        wrong = rng.choice([t for t in alternatives[key] if t != target])
        right_v = bench.score(s, f"Let's think step by step. Done. So the answer is {target}.").value
        wrong_v = bench.score(s, f"Let's think step by step. Done. So the answer is {wrong}.").value
        if right_v != 1.0 or wrong_v != 0.0:
            bad.append((s.id, target, right_v, wrong, wrong_v))
    assert not bad, f"bbh: {len(bad)}/{len(pairs)} scored against the raw target, e.g. {bad[:3]}"


# -------------------------------------------------------------------------------------------------- math


def _commas(n: int) -> str:
    return f"{n:,}"


def equal_forms(gold: str) -> list[tuple[str, str]]:
    """(label, reply) pairs that a correct grader must score as equal to ``gold``."""
    g = gold.strip()
    out: list[tuple[str, str]] = []
    if re.fullmatch(r"-?\d+", g):
        n = int(g)
        out += [
            (
                "last of several numbers",
                f"First {n + 7} items, then 3 are removed twice.\nSo the result is {g}",
            ),
            ("boxed x=", f"Solving gives \\boxed{{x = {g}}}"),
            ("decimal .00", f"The answer is $\\boxed{{{g}.00}}$."),
            ("unit", f"Hence the length is \\boxed{{{g} \\text{{ cm}}}}."),
        ]
        if abs(n) >= 1000:
            out.append(("thousands separator", f"The total comes to \\boxed{{{_commas(n)}}}."))
            out.append(
                ("dollars with separator", f"She earns ${_commas(n)} in total.\nANSWER: \\${_commas(n)}")
            )
    m = re.fullmatch(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}", g)
    if m:
        fr = Fraction(int(m.group(1)), int(m.group(2)))
        out.append(("slash", f"The ratio is \\boxed{{{fr.numerator}/{fr.denominator}}}"))
        out.append(("dfrac", f"\\boxed{{\\dfrac{{{m.group(1)}}}{{{m.group(2)}}}}}"))
        if 1_000_000 % fr.denominator == 0 or all(p in (2, 5) for p in _primes(fr.denominator)):
            out.append(("decimal", f"\\boxed{{{float(fr):g}}}"))
    m = re.fullmatch(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}", g)
    if m and not re.fullmatch(r"-?\d+", m.group(1) + m.group(2).replace("-", "")):
        out.append(("symbolic slash", f"\\boxed{{({m.group(1)})/({m.group(2)})}}"))
    m = re.fullmatch(r"\\sqrt\{(\d+)\}", g)
    if m:
        out.append(("root as power", f"\\boxed{{{m.group(1)}^{{1/2}}}}"))
    m = re.fullmatch(r"(\d+)\\sqrt\{(\d+)\}", g)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        out.append(("coefficient moved inside the root", f"\\boxed{{\\sqrt{{{a * a * b}}}}}"))
    m = re.fullmatch(r"\((-?\d+), ?(-?\d+)\)", g)
    if m:
        out.append(("pair with \\left( \\right)", f"\\boxed{{\\left( {m.group(1)}, {m.group(2)} \\right)}}"))
    m = re.fullmatch(r"(\d+) ?\\pi", g)
    if m:
        out.append(("pi first", f"\\boxed{{\\pi \\cdot {m.group(1)}}}"))
    return out


def _primes(n: int) -> list[int]:
    ps, d = [], 2
    while d * d <= n:
        while n % d == 0:
            ps.append(d)
            n //= d
        d += 1
    return ps + ([n] if n > 1 else [])


def different_forms(gold: str) -> list[tuple[str, str]]:
    """(label, reply) pairs that look like ``gold`` but are not equal to it."""
    g = gold.strip()
    out: list[tuple[str, str]] = []
    if re.fullmatch(r"-?\d+", g):
        n = int(g)
        out += [
            ("gold first, another number last", f"One might say {g}, but recounting gives {n + 10}"),
            ("times ten", f"\\boxed{{{n * 10 if n else 10}}}"),
            ("negated", f"\\boxed{{{-n}}}" if n != 0 else "\\boxed{1}"),
            (
                "decimal point inside",
                f"\\boxed{{{g[:-1] or '0'}.{g[-1]}}}" if abs(n) >= 10 else "\\boxed{0.5}",
            ),
        ]
    m = re.fullmatch(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}", g)
    if m and m.group(1) != m.group(2):
        out.append(("inverted", f"\\boxed{{\\frac{{{m.group(2)}}}{{{m.group(1)}}}}}"))
        out.append(("tenth of it", f"\\boxed{{{float(Fraction(int(m.group(1)), int(m.group(2)))) / 10:g}}}"))
    m = re.fullmatch(r"\\sqrt\{(\d+)\}", g)
    if m:
        out.append(("cube root", f"\\boxed{{\\sqrt[3]{{{m.group(1)}}}}}"))
    m = re.fullmatch(r"(\d+)\\sqrt\{(\d+)\}", g)
    if m and m.group(1) != "1":
        out.append(("coefficient pasted into the root", f"\\boxed{{\\sqrt{{{m.group(1)}{m.group(2)}}}}}"))
    m = re.fullmatch(r"\((-?\d+), ?(-?\d+)\)", g)
    if m and m.group(1) != m.group(2):
        out.append(("pair swapped", f"\\boxed{{({m.group(2)}, {m.group(1)})}}"))
    m = re.fullmatch(r"(\d+) ?\\pi", g)
    if m:
        out.append(("pi dropped", f"\\boxed{{{m.group(1)}}}"))
    return out


#: Forms today's grader scores wrongly; the math-verify grader (issue 11 item 10) is expected to fix them.
KNOWN_GRADER_GAPS: set[str] = set()


@pytest.mark.parametrize("name", sorted(MATH))
def test_math_equal_and_lookalike_forms_against_raw_answers(name: str, shared_datasets: Path) -> None:
    bench = BENCHMARKS.get(name)(shared_datasets, {})
    samples = limit_samples(bench.load(), MATH_LIMIT)
    pairs = match_rows(samples, MATH[name](shared_datasets))
    assert len(pairs) >= 0.9 * len(samples), f"{name}: only {len(pairs)}/{len(samples)} prompts found"
    tried: dict[str, int] = {}
    bad: dict[str, list[tuple[str, str, str, float]]] = {}
    for s, gold in pairs:
        for label, reply in equal_forms(gold):
            tried[label] = tried.get(label, 0) + 1
            v = bench.score(s, reply).value
            if v != 1.0:
                bad.setdefault(f"equal/{label}", []).append((s.id, gold, reply[-40:], v))
        for label, reply in different_forms(gold):
            tried[label] = tried.get(label, 0) + 1
            v = bench.score(s, reply).value
            if v != 0.0:
                bad.setdefault(f"different/{label}", []).append((s.id, gold, reply[-40:], v))
    assert tried, f"{name}: no answer had a shape these forms cover"
    print(name, "forms tried:", tried)
    unexpected = {k: v for k, v in bad.items() if k not in KNOWN_GRADER_GAPS}
    summary = {k: f"{len(v)} e.g. {v[0]}" for k, v in unexpected.items()}
    assert not unexpected, f"{name}: forms scored wrongly (tried {tried}): {summary}"


# -------------------------------------------------------------------------------------------------- code


def raw_humaneval(root: Path) -> list[dict[str, str]]:
    import gzip

    with gzip.open(root / "humaneval" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


async def _raw_code_scores(
    shared_datasets: Path,
    name: str,
    rows: list[dict[str, Any]],
    asked: Callable[[str], int],
    code: Callable[[dict[str, Any]], str],
) -> None:
    """For 12 samples: the raw code of the task its prompt asks for passes; the next raw task's code fails.

    ``asked(prompt)`` finds that task's row in the raw file, so the truth never comes from the loader.
    """
    from evalscope.errors import SandboxUnavailableError

    bench = BENCHMARKS.get(name)(shared_datasets, {"allow_code_execution": True, "timeout": 60})
    samples = limit_samples(bench.load(), 12)
    try:
        await bench.sandbox.start()  # type: ignore[attr-defined]
    except SandboxUnavailableError as exc:
        pytest.skip(f"sandbox unavailable: {exc.one_line()}")
    bad = []
    for s in samples:
        i = asked(_prompt(s))
        row, other = rows[i], rows[(i + 1) % len(rows)]
        right = await bench.ascore(s, f"```python\n{code(row)}\n```")
        wrong = await bench.ascore(s, f"```python\n{code(other)}\n```")
        if right.value != 1.0 or wrong.value != 0.0:
            bad.append((s.id, row["task_id"], right.status, other["task_id"], wrong.status))
    assert not bad, f"{name}: {len(bad)}/{len(samples)} scored against the raw code, e.g. {bad[:3]}"


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_humaneval_raw_solution_passes_and_a_neighbours_fails(shared_datasets: Path) -> None:
    """The raw canonical solution of the task the prompt shows passes; the next task's solution fails."""
    rows = raw_humaneval(shared_datasets)

    def asked(prompt: str) -> int:
        return next(i for i, r in enumerate(rows) if r["prompt"].strip() in prompt)

    await _raw_code_scores(
        shared_datasets, "humaneval", rows, asked, lambda r: f"{r['prompt']}{r['canonical_solution']}"
    )


def raw_mbpp(root: Path) -> list[dict[str, Any]]:
    with open(root / "mbpp" / "mbpp.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_mbpp_raw_code_passes_and_a_neighbours_fails(shared_datasets: Path) -> None:
    """The raw reference code of the task the prompt asks for passes; another task's code fails.

    The prompt holds few-shot tasks before the asked one, so the asked task is the raw row whose text stands
    last in the prompt.
    """
    rows = raw_mbpp(shared_datasets)

    def asked(prompt: str) -> int:
        at = {i: prompt.rfind(str(r["text"]).strip()) for i, r in enumerate(rows)}
        i = max(at, key=lambda k: at[k])
        assert at[i] >= 0, "no raw task text in the prompt"
        return i

    await _raw_code_scores(shared_datasets, "mbpp", rows, asked, lambda r: str(r["code"]))
