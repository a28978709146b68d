"""Framework results -> our report shape, shared by every backend adapter.

An adapter reduces a framework's output to per-sample records (``SampleRecord``); :func:`accuracy_report`
turns them into the same report dict the native runner writes (``reports/<model>/<benchmark>.json``), so
``evalscope report``, the console table and comparisons read both alike. Per-sample records go to
``samples/<model>/<benchmark>.jsonl`` next to the reports.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from evalscope import __version__
from evalscope.eval.report import model_dir_name


@dataclass(slots=True)
class SampleRecord:
    """One scored sample as a framework saw it (the question is kept so runs can be matched by text)."""

    index: int  # position in the framework's (possibly filtered) list for its subset
    subset: str
    correct: bool
    prediction: str | None = None  # the model's raw answer
    extracted: str | None = None  # what the framework's extraction rule took from it
    gold: str | None = None
    prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _stderr(p: float, n: int) -> float | None:
    return math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else None


def accuracy_report(
    benchmark: str,
    model: str,
    records: list[SampleRecord],
    *,
    backend: dict[str, Any],
    endpoint: str | None,
    limit: Any,
    config: dict[str, Any],
    unparsed_values: tuple[str, ...] = ("", "NULL"),
) -> dict[str, Any]:
    """The report dict for one benchmark: micro accuracy over ``records``, one row per subset.

    ``backend`` says which framework scored it and how (name, version, its dataset config, data path, its own
    headline figure); the score is recomputed here from the per-sample records so that it means the same as
    a native report's (micro average over samples; the framework's own average may weight subsets equally).
    """
    n = len(records)
    correct = sum(1 for r in records if r.correct)
    score = correct / n if n else None
    by_subset: dict[str, list[SampleRecord]] = {}
    for r in records:
        by_subset.setdefault(r.subset, []).append(r)
    subsets = [
        {
            "name": name,
            "score": sum(1 for r in rs if r.correct) / len(rs),
            "num_samples": len(rs),
        }
        for name, rs in by_subset.items()
    ]
    unparsed = sum(1 for r in records if r.extracted is None or str(r.extracted).strip() in unparsed_values)
    return {
        "benchmark": benchmark,
        "model": model,
        "metric": "accuracy",
        "score": score,
        "score_all": score,
        "stderr": None if score is None else _stderr(score, n),
        "num_samples": n,
        "num_unique_samples": n,
        "repeats": 1,
        "subsets": subsets,
        "categories": [],
        "unparsed": unparsed,
        "unparsed_rate": unparsed / n if n else 0.0,
        "truncated": 0,
        "truncated_rate": 0.0,
        "errored": 0,
        "error_rate": 0.0,
        "errors": {},
        "statuses": {"correct": correct, "wrong": n - correct} if n else {},
        "prompt_version": backend.get("dataset_config"),
        "few_shot": backend.get("few_shot"),
        "generation": backend.get("generation"),
        "dataset_hash": None,
        "subset_list": list(by_subset),
        "endpoint": endpoint,
        "backend": backend,
        "versions": {
            "evalscope": __version__,
            "backend": backend.get("version"),
            "python": sys.version.split()[0],
        },
        "limit": limit,
        "performance": {},
        "run": {"config": config},
    }


def write_samples(run_dir: Path, model: str, benchmark: str, records: list[SampleRecord]) -> Path:
    """``samples/<model>/<benchmark>.jsonl``: one line per sample (atomic replace)."""
    d = run_dir / "samples" / model_dir_name(model)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{benchmark}.jsonl"
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        for r in records:
            f.write(orjson.dumps(asdict(r)) + b"\n")
    os.replace(tmp, path)
    return path


def read_samples(path: Path) -> list[SampleRecord]:
    """The records :func:`write_samples` wrote."""
    out: list[SampleRecord] = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            out.append(SampleRecord(**orjson.loads(line)))
    return out
