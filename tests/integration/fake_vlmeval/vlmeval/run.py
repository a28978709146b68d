from __future__ import annotations

import csv
import json
import os
import re
import urllib.request
from collections import defaultdict
from typing import Any

from vlmeval.config import supported_VLM

_LETTER = re.compile(r"\b([A-D])\b")


def _prompt(row: dict[str, str]) -> str:
    opts = "".join(f"{k}. {row[k]}\n" for k in "ABCD" if row.get(k))
    return f"Question: {row['question']}\nOptions:\n{opts}Please select the correct answer from the options above. \n"


def _ask(model: Any, row: dict[str, str]) -> str:
    content = [
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + row["image"], "detail": "high"},
        },
        {"type": "text", "text": _prompt(row)},
    ]
    body = {"model": model.model, "messages": [{"role": "user", "content": content}], "max_tokens": 64}
    req = urllib.request.Request(
        model.api_base,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {model.key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return str(json.load(r)["choices"][0]["message"]["content"])
    except Exception as exc:  # what VLMEvalKit records for a failed call
        return f"Failed to obtain answer via API. {exc}"


def run_task(args: Any) -> None:
    root = os.environ["LMUData"]  # noqa: SIM112 (VLMEvalKit spells it so)
    for name in args.model:
        model = supported_VLM[name]()
        out = os.path.join(args.work_dir, name)
        os.makedirs(out, exist_ok=True)
        status: dict[str, Any] = {"datasets": {}, "model_name": name}
        for data in args.data:
            with open(os.path.join(root, f"{data}.tsv"), encoding="utf-8") as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
            if args.limit is not None:
                rows = rows[: args.limit]
            hits: dict[str, list[int]] = defaultdict(list)
            for row in rows:
                found = _LETTER.findall(_ask(model, row))
                hit = int(bool(found) and found[-1] == row["answer"])
                hits["Overall"].append(hit)
                hits[row["category"]].append(hit)
            acc = {k: sum(v) / len(v) for k, v in hits.items()}
            cols = ["split", "Overall", *sorted(k for k in acc if k != "Overall")]
            with open(os.path.join(out, f"{name}_{data}_acc.csv"), "w", encoding="utf-8", newline="") as f:
                w = csv.writer(f, quoting=csv.QUOTE_ALL)
                w.writerow(cols)
                w.writerow(["none", *(acc[c] for c in cols[1:])])
            status["datasets"][data] = {
                "status": "done",
                "judge_model": args.judge,
                "metrics": {f"split=none|{k}": v for k, v in acc.items()},
            }
            print(f"fake vlmeval: {name} x {data}: Overall {acc['Overall']}", flush=True)
        with open(os.path.join(out, "status.json"), "w", encoding="utf-8") as f:
            json.dump(status, f)
