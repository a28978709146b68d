"""Runs VLMEvalKit for the VLMEvalKit adapter, inside the Python that has ``vlmeval`` installed.

Executed by path (``<python> vlmeval_driver.py <run.json>``), so it imports nothing from evalscope: the
interpreter may be a separate virtual environment with only VLMEvalKit in it. ``run.json`` is what
``vlmeval.py``'s translation wrote: ``models`` (name -> keyword arguments of a VLMEvalKit API class, ``class``
naming it), ``data``, ``work_dir``, ``mode``, ``limit``, ``nproc``, ``judge``, ``reuse``, ``retry``. API keys
arrive in the environment (``EVALSCOPE_VLMEVAL_KEY_<n>``), never in the file.

What it does is what VLMEvalKit's own entry point does after parsing its flags, with the API models registered
under their names first (VLMEvalKit looks models up by name in ``vlmeval.config.supported_VLM``).
"""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from typing import Any


def _unshadow() -> None:
    """Drop this file's folder from ``sys.path``: Python puts a script's folder first, and our adapter module
    there is also named ``vlmeval``, which would hide VLMEvalKit's package."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]


def main(argv: list[str]) -> int:
    _unshadow()
    if len(argv) != 1:
        print("usage: vlmeval_driver.py <run.json>", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        cfg: dict[str, Any] = json.load(f)
    import vlmeval.api
    from vlmeval.config import supported_VLM
    from vlmeval.run import run_task
    from vlmeval.utils.arguments import Arguments

    names = []
    for i, (name, kwargs) in enumerate(cfg["models"].items()):
        kw = dict(kwargs)
        cls = getattr(vlmeval.api, kw.pop("class"))
        key = os.environ.get(f"EVALSCOPE_VLMEVAL_KEY_{i}")
        kw["key"] = key if key else "EMPTY"
        supported_VLM[name] = partial(cls, **kw)
        names.append(name)
    args = Arguments(
        data=list(cfg["data"]),
        model=names,
        work_dir=cfg["work_dir"],
        mode=cfg.get("mode") or "all",
        limit=cfg.get("limit"),
        api_nproc=int(cfg.get("nproc") or 4),
        retry=int(cfg.get("retry") or 3),
        judge=cfg.get("judge"),
        reuse=bool(cfg.get("reuse")),
        verbose=bool(cfg.get("verbose")),
    )
    print(
        f"evalscope: VLMEvalKit run_task models={names} data={args.data} work_dir={args.work_dir}", flush=True
    )
    run_task(args)
    for name in names:
        for data in args.data:
            export_samples(cfg["work_dir"], name, data)
    return 0


def export_samples(work_dir: str, model: str, data: str) -> None:
    """Per-sample verdicts (``index, category, answer, prediction, hit``) as JSON lines beside VLMEvalKit's own
    files, so that evalscope can read them without pandas or openpyxl."""
    import glob

    found = sorted(glob.glob(os.path.join(work_dir, model, f"{model}_{data}_*_result.xlsx")))
    if not found:
        return
    import pandas as pd

    frame = pd.read_excel(found[0])
    out = os.path.join(work_dir, model, f"{model}_{data}_evalscope_samples.jsonl")
    keep = [c for c in ("index", "category", "answer", "prediction", "hit") if c in frame.columns]
    with open(out, "w", encoding="utf-8") as f:
        for row in frame[keep].to_dict(orient="records"):
            f.write(json.dumps({k: (None if pd.isna(v) else v) for k, v in row.items()}, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
