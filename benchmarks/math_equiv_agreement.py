"""Agreement of :func:`math_equiv` with math-verify alone, on MATH-500 and the MATH test set.

Two checks per gold answer: gold against itself, and perturbed replies — forms that are equal but written
differently (boxed, ``x = ...``, thousands separators, fraction as decimal or ``a/b``, units) and look-alikes
that differ (off by one, scaled, swapped fraction). Each pair is scored by ``math_equiv`` (shortcuts + math-verify)
and by ``math_verify_equiv`` (math-verify alone); disagreements are listed. Run:
``python benchmarks/math_equiv_agreement.py [--limit N] [--no-perturb-math]`` (needs ../shared/datasets).
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from fractions import Fraction
from pathlib import Path

from evalscope.eval.benchmarks._math_base import wrong_answer
from evalscope.eval.scoring.extract import extract_math_answer
from evalscope.eval.scoring.math_equiv import math_equiv, math_verify_equiv, parse_number

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
_FRAC = re.compile(r"^\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")


def golds() -> dict[str, list[str]]:
    m500 = [json.loads(x)["answer"] for x in (DATA / "math500" / "test.jsonl").read_text().splitlines() if x]
    with open(DATA / "math" / "simple-evals" / "math_test.csv", newline="") as f:
        math = [r["Answer"].strip() for r in csv.DictReader(f)]
    return {"math500": m500, "math": math}


def perturb(g: str) -> tuple[list[str], list[str]]:
    """(equal replies, look-alike replies): the reply text whose extracted answer is compared with ``g``."""
    equal = [f"The answer is $\\boxed{{{g}}}$.", f"Hence \\boxed{{x = {g}}}" if "=" not in g else f"\\boxed{{{g}}}"]
    differ = [f"\\boxed{{{wrong_answer(g)}}}"]
    n = parse_number(g)
    if n is not None:
        if float(n).is_integer() and abs(n) >= 1000:
            equal.append(f"\\boxed{{{int(n):,}}}")
        equal.append(f"\\boxed{{{g}\\text{{ units}}}}")
        differ.append(f"\\boxed{{{n * 10:g}}}")
    m = _FRAC.match(g.replace(" ", ""))
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        equal.append(f"\\boxed{{{a}/{b}}}")
        fr = Fraction(a, b)
        den = fr.denominator
        while den % 2 == 0:
            den //= 2
        while den % 5 == 0:
            den //= 5
        if den == 1:
            equal.append(f"\\boxed{{{float(fr)!r}}}")
        if a not in (0, b) and abs(a) != b:
            differ.append(f"\\boxed{{\\frac{{{b}}}{{{a}}}}}")
    return equal, differ


def main() -> None:
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
    perturb_math = "--no-perturb-math" not in sys.argv
    out: dict[str, dict[str, int]] = {}
    disagreements: list[tuple[str, str, str, bool, bool]] = []
    for name, gs in golds().items():
        gs = gs[:limit] if limit else gs
        row = {"gold_vs_gold": len(gs), "gold_ours_true": 0, "gold_mv_true": 0, "gold_agree": 0,
               "perturbed": 0, "perturbed_agree": 0, "equal_forms": 0, "equal_ours": 0, "equal_mv": 0,
               "lookalikes": 0, "lookalike_ours_false": 0, "lookalike_mv_false": 0}
        t0 = time.monotonic()
        for g in gs:
            o, v = math_equiv(g, g), math_verify_equiv(g, g)
            row["gold_ours_true"] += o
            row["gold_mv_true"] += v
            row["gold_agree"] += o == v
            if o != v:
                disagreements.append((name, "gold", g, o, v))
            if name == "math" and not perturb_math:
                continue
            eq, diff = perturb(g)
            for kind, replies in (("equal", eq), ("lookalike", diff)):
                for reply in replies:
                    pred = extract_math_answer(reply) or ""
                    o, v = math_equiv(pred, g), math_verify_equiv(pred, g)
                    row["perturbed"] += 1
                    row["perturbed_agree"] += o == v
                    if kind == "equal":
                        row["equal_forms"] += 1
                        row["equal_ours"] += o
                        row["equal_mv"] += v
                    else:
                        row["lookalikes"] += 1
                        row["lookalike_ours_false"] += not o
                        row["lookalike_mv_false"] += not v
                    if o != v:
                        disagreements.append((name, kind, f"{pred!r} vs {g!r}", o, v))
        row["seconds"] = round(time.monotonic() - t0)
        out[name] = row
        print(name, json.dumps(row), flush=True)
    print(f"disagreements ({len(disagreements)}): dataset, kind, pair, ours, math-verify")
    for d in disagreements:
        print("  ", *d)


if __name__ == "__main__":
    main()
