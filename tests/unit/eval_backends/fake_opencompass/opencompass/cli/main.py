"""Fake ``opencompass.cli.main``: reads the adapter's task.json next to the config, asks the endpoint each
question with OpenCompass's prompt shape, scores with OpenCompass's rules for gsm8k (last number) and ARC (first
option letter), and writes its output layout (predictions/, results/ with details, summary/)."""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.request
from pathlib import Path


def _ask(base: str, model: str, prompt: str) -> str:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0})
    req = urllib.request.Request(f"{base}/chat/completions", data=body.encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {os.environ.get('OPENAI_API_KEY', '')}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(json.loads(resp.read())["choices"][0]["message"]["content"])


def _rows(ds: dict, n: int) -> list[tuple[str, str]]:
    path = Path(ds["path"])
    out: list[tuple[str, str]] = []
    if ds["name"] == "gsm8k":
        for line in (path / "test.jsonl").read_text(encoding="utf-8").splitlines()[:n]:
            o = json.loads(line)
            out.append(
                (
                    f"Question: {o['question']}\nLet's think step by step\nAnswer:",
                    o["answer"].split("#### ")[1],
                )
            )
    else:
        for line in path.read_text(encoding="utf-8").splitlines():
            o = json.loads(line)
            ch = o["question"]["choices"]
            if len(ch) != 4:
                continue
            labels = [c["label"] for c in ch]
            opts = "\n".join(f"{'ABCD'[i]}. {c['text']}" for i, c in enumerate(ch))
            out.append(
                (f"Question: {o['question']['stem']}\n{opts}\nAnswer:", "ABCD"[labels.index(o["answerKey"])])
            )
            if len(out) >= n:
                break
    return out


def main() -> None:
    cfg = Path(sys.argv[1])
    work = Path(sys.argv[sys.argv.index("-w") + 1])
    assert "OpenAISDK" in cfg.read_text() and "key='ENV'" in cfg.read_text()
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and "DATASET_SOURCE" not in os.environ
    task = json.loads((cfg.parent / "task.json").read_text())
    tr = task["test_range"] or "[0:1000000]"
    n = int(tr.strip("[]").split(":")[1])
    exp = work / "20260101_000000"
    print("fake opencompass: running", [d["name"] for d in task["datasets"]], flush=True)
    for m in task["models"]:
        for ds in task["datasets"]:
            preds, details, correct = {}, {}, 0
            rows = _rows(ds, n)
            for i, (prompt, gold) in enumerate(rows):
                text = _ask(m["openai_api_base"], m["path"], prompt)
                if ds["name"] == "gsm8k":
                    nums = re.findall(r"\-?\d+\.\d+|\-?\d+", text.split("Question:")[0])
                    pred = nums[-1] if nums else "NULL"
                    ok = pred == gold.replace(",", "")
                else:
                    hit = re.search(r"(?i)ANSWER\s*:\s*([ABCD])", text) or re.search(r"([ABCD])", text)
                    pred = hit.group(1) if hit else ""
                    ok = pred == gold
                correct += ok
                preds[str(i)] = {"origin_prompt": prompt, "prediction": text, "gold": gold}
                details[str(i)] = {"predictions": pred, "references": gold}
            for sub, obj in (
                ("predictions", preds),
                (
                    "results",
                    {"accuracy": 100 * correct / max(1, len(rows)), "details": {"type": "GEN", **details}},
                ),
            ):
                d = exp / sub / m["abbr"]
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{ds['abbr']}.json").write_text(json.dumps(obj))
    (exp / "summary").mkdir(parents=True, exist_ok=True)
    print("fake opencompass: done", flush=True)
