"""Cross-check our scoring against OpenCompass on one deterministic endpoint (issue 19).

The simulator runs the ``scripted`` policy with an answer key built here: each gsm8k / ARC-Challenge test
question gets one fixed reply (its style chosen by a hash of the question: right or wrong answer, in a format a
real model might use), whatever prompt template wraps it. Our native ``gsm8k`` and ``arc`` and OpenCompass's
``gsm8k_gen_1d7fe4`` and ``ARC_c_gen_1e0de5`` (through ``--eval-backend OpenCompass``) then score the same
replies; samples are matched by question text and per-sample correctness is compared. Every disagreement is
listed with the reply, both extractions and the gold answer.

Needs OpenCompass in some interpreter (``--oc-python`` or ``$EVALSCOPE_OPENCOMPASS_PYTHON``). Run as
``nox -s crosscheck_opencompass`` or ``python benchmarks/crosscheck_opencompass.py --limit 60``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import zlib
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

GSM_STYLES = ("boxed", "answer_is", "hash", "wrong", "check_after", "thousands", "trailing_question")
ARC_STYLES = ("marker", "answer_is", "bare", "option_text", "wrong", "bold_marker", "letter_then_reason")


def _style(question: str, styles: tuple[str, ...]) -> str:
    return styles[zlib.crc32(question.encode("utf-8")) % len(styles)]


def gsm_reply(question: str, gold: str) -> tuple[str, str]:
    """A fixed reply to a gsm8k question and its style (gold is the number after '####')."""
    style = _style(question, GSM_STYLES)
    g = int(gold.replace(",", ""))
    if style == "boxed":
        return style, f"Let me work it out step by step.\nThe final answer is $\\boxed{{{g}}}$."
    if style == "answer_is":
        return style, f"Adding the parts together gives the total.\nSo the answer is {g}."
    if style == "hash":
        return style, f"Computing each part and summing them.\n#### {g}"
    if style == "wrong":
        return style, f"I add the amounts.\nThe answer is {g + 7}."
    if style == "check_after":
        return style, f"The answer is {g}.\nCheck: {g} - 1 = {g - 1}, which is consistent."
    if style == "thousands":
        text = f"{g:,}" if abs(g) >= 1000 else f"${g}.00"
        return style, f"Multiplying and adding, the answer is {text}."
    return style, f"The answer is {g}.\nQuestion: what is 2 + 3?"


def arc_reply(question: str, gold: str, options: dict[str, str]) -> tuple[str, str]:
    """A fixed reply to an ARC question and its style."""
    style = _style(question, ARC_STYLES)
    letters = sorted(options)
    wrong = next(x for x in letters if x != gold)
    if style == "marker":
        return style, f"Let me think step by step.\nANSWER: {gold}"
    if style == "answer_is":
        return style, f"The correct answer is ({gold})."
    if style == "bare":
        return style, gold
    if style == "option_text":
        return style, f"{gold}. {options[gold]}"
    if style == "wrong":
        return style, f"Let me think.\nANSWER: {wrong}"
    if style == "bold_marker":
        return style, f"**Answer: {gold}**"
    return style, f"{gold} is right, because {wrong} and the others do not fit the question."


def pattern(question: str) -> str:
    """A regex matching the question in any prompt (whitespace-tolerant)."""
    words = question.split()
    return r"\s+".join(re.escape(w) for w in words)


def load_gsm(data: Path, n: int) -> list[dict[str, Any]]:
    out = []
    with (data / "gsm8k" / "test.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if len(out) >= n:
                break
            o = json.loads(line)
            gold = o["answer"].rsplit("####", 1)[1].strip().replace(",", "")
            style, reply = gsm_reply(o["question"], gold)
            out.append(
                {"bench": "gsm8k", "question": o["question"], "gold": gold, "style": style, "reply": reply}
            )
    return out


def load_arc(data: Path, n: int) -> list[dict[str, Any]]:
    out = []
    path = data / "arc" / "ARC-Challenge" / "ARC-Challenge-Test.jsonl"
    with path.open(encoding="utf-8") as f:
        for line in f:
            if len(out) >= n:
                break
            o = json.loads(line)
            choices = o["question"]["choices"]
            labels = [c["label"] for c in choices]
            letters = "ABCDE"[: len(choices)]
            options = {letters[i]: c["text"] for i, c in enumerate(choices)}
            gold = letters[labels.index(o["answerKey"])]
            q = o["question"]["stem"]
            style, reply = arc_reply(q, gold, options)
            out.append(
                {
                    "bench": "arc",
                    "question": q,
                    "gold": gold,
                    "style": style,
                    "reply": reply,
                    "n_options": len(choices),
                }
            )
    return out


def native_results(run_dir: Path, bench: str) -> list[dict[str, Any]]:
    from evalscope.eval.journal import latest_entries, read_journal

    entries = latest_entries(read_journal(run_dir / "journal" / f"{bench}.jsonl")[0])
    out = []
    for e in entries.values():
        prompt = "\n".join(str(m.get("content")) for m in e.get("prompt") or [] if isinstance(m, dict))
        out.append(
            {"prompt": prompt, "correct": float(e.get("score") or 0) >= 1, "extracted": e.get("extracted")}
        )
    return out


def match(
    key: list[dict[str, Any]], rows: list[dict[str, Any]], prompt_of: str = "prompt"
) -> dict[int, dict[str, Any]]:
    """Answer-key index -> the row whose prompt contains that question (the last user turn holds it)."""
    pats = [re.compile(pattern(k["question"])) for k in key]
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        text = str(r.get(prompt_of) or "")
        for i, p in enumerate(pats):
            if i not in out and p.search(text):
                out[i] = r
                break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--dataset-dir",
        type=Path,
        default=Path(os.environ.get("EVALSCOPE_DATASETS", "/work/shared/datasets")),
    )
    ap.add_argument("--limit", type=int, default=60, help="questions per benchmark")
    ap.add_argument("--oc-python", default=os.environ.get("EVALSCOPE_OPENCOMPASS_PYTHON"))
    ap.add_argument("--out", type=Path, default=None, help="write crosscheck.json / crosscheck.md here")
    args = ap.parse_args()
    if args.oc_python:
        os.environ["EVALSCOPE_OPENCOMPASS_PYTHON"] = args.oc_python

    from evalscope.eval.runner import run_eval
    from evalscope.sim import SimConfig, SimProcess

    work = Path(tempfile.mkdtemp(prefix="crosscheck_oc_"))
    out_dir = args.out or work
    out_dir.mkdir(parents=True, exist_ok=True)
    key = {"gsm8k": load_gsm(args.dataset_dir, args.limit), "arc": load_arc(args.dataset_dir, args.limit)}
    rules = [{"pattern": pattern(k["question"]), "reply": k["reply"]} for ks in key.values() for k in ks]
    script = work / "answer_key.json"
    script.write_text(json.dumps(rules), encoding="utf-8")
    sim = SimProcess(
        SimConfig(
            policy="scripted",
            script=str(script),
            script_default="I do not know.",
            models=["sim-model"],
            ttft_ms=1.0,
            itl_ms=0.0,
        )
    ).start()
    try:
        url = f"{sim.url}/v1"
        native = run_eval(
            {
                "datasets": ["gsm8k", "arc"],
                "dataset_args": {"arc": {"subset_list": ["ARC-Challenge"]}},
                "limit": args.limit,
                "api_url": url,
                "model": "sim-model",
                "dataset_dir": str(args.dataset_dir),
                "work_dir": str(work / "native"),
                "generation_config": {"temperature": 0},
                "quiet": True,
                "html": False,
            }
        )
        oc = run_eval(
            {
                "eval_backend": "OpenCompass",
                "eval_config": {
                    "datasets": ["gsm8k", "ARC_c"],
                    "models": [
                        {
                            "path": "sim-model",
                            "openai_api_base": f"{url}/chat/completions",
                            "is_chat": True,
                            "batch_size": 16,
                            "temperature": 0.0,
                        }
                    ],
                    "limit": args.limit,
                    "dataset_dir": str(args.dataset_dir),
                    "work_dir": str(work / "opencompass"),
                },
                "quiet": True,
            }
        )
    finally:
        sim.stop()

    from evalscope.eval.backends.convert import read_samples

    summary: dict[str, Any] = {"limit": args.limit, "benchmarks": {}}
    lines = ["# OpenCompass cross-check", ""]
    lines += [
        "| benchmark | answer key | native scored | OpenCompass scored | matched | agree | disagree | native acc | OC acc (same samples) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    details: list[str] = []
    for ours, theirs in (("gsm8k", "gsm8k"), ("arc", "ARC_c")):
        ks = key[ours]
        nat = native_results(native.run_dir, ours)
        ocs = [asdict(r) for r in read_samples(oc.run_dir / "samples" / "sim-model" / f"{theirs}.jsonl")]
        mn, mo = match(ks, nat), match(ks, ocs)
        both = sorted(set(mn) & set(mo))
        agree = [i for i in both if mn[i]["correct"] == mo[i]["correct"]]
        dis = [i for i in both if mn[i]["correct"] != mo[i]["correct"]]
        by_style: Counter[str] = Counter(ks[i]["style"] for i in dis)
        nat_acc = sum(mn[i]["correct"] for i in both) / len(both) if both else 0.0
        oc_acc = sum(mo[i]["correct"] for i in both) / len(both) if both else 0.0
        lines.append(
            f"| {ours} / {theirs} | {len(ks)} | {len(mn)} | {len(mo)} | {len(both)} | {len(agree)} | {len(dis)} | "
            f"{nat_acc:.3f} | {oc_acc:.3f} |"
        )
        only_native = [i for i in mn if i not in mo]
        summary["benchmarks"][ours] = {
            "answer_key": len(ks),
            "native": len(mn),
            "opencompass": len(mo),
            "matched": len(both),
            "agree": len(agree),
            "disagree": len(dis),
            "disagree_by_style": dict(by_style),
            "native_accuracy": nat_acc,
            "opencompass_accuracy": oc_acc,
            "styles": dict(Counter(k["style"] for k in ks)),
            "only_native": [
                {"question": ks[i]["question"][:80], "n_options": ks[i].get("n_options")} for i in only_native
            ],
            "disagreements": [
                {
                    "style": ks[i]["style"],
                    "reply": ks[i]["reply"],
                    "gold": ks[i]["gold"],
                    "native": {"correct": mn[i]["correct"], "extracted": mn[i]["extracted"]},
                    "opencompass": {"correct": mo[i]["correct"], "extracted": mo[i]["extracted"]},
                }
                for i in dis
            ],
        }
        details.append(f"\n## {ours} vs {theirs}: {len(dis)} disagreement(s)\n")
        for d in summary["benchmarks"][ours]["disagreements"]:
            details.append(
                f"- style `{d['style']}`, gold `{d['gold']}`: native {'right' if d['native']['correct'] else 'wrong'} "
                f"(extracted `{d['native']['extracted']}`), OpenCompass {'right' if d['opencompass']['correct'] else 'wrong'} "
                f"(extracted `{d['opencompass']['extracted']}`); reply: `{d['reply']!r}`"
            )
        if only_native:
            details.append(
                f"- {len(only_native)} question(s) scored by ours only (OpenCompass's ARC loader drops "
                "questions without exactly 4 options)"
            )
    text = "\n".join(lines + details) + "\n"
    (out_dir / "crosscheck.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out_dir / "crosscheck.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"native run: {native.run_dir}\nOpenCompass run: {oc.run_dir}\nwritten: {out_dir}/crosscheck.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
