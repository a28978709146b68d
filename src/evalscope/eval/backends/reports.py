"""Framework scores in our report shape, so that ``reports/<model>/<benchmark>.json`` and the console table
read the same whichever backend produced them.

A backend report carries the keys :func:`evalscope.eval.report.print_table` and report readers use (``benchmark``,
``model``, ``metric``, ``score`` 0-1, ``num_samples``, ``subsets``, ``errored``...), plus ``backend`` (which
framework scored it), ``metrics`` (every metric the framework reported, by its own name) and ``source`` (the
framework's own result files, relative to the run directory). ``errored`` counts samples whose request failed for
good; the frameworks score those as wrong answers, so they are among ``num_samples``. Settings that only our native runner knows
(prompt version, shots, dataset hash) are None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalscope import __version__
from evalscope.eval.backends.base import BackendResult
from evalscope.eval.config import scrub_secrets
from evalscope.eval.report import write_report


def backend_report(
    *,
    backend: str,
    benchmark: str,
    model: str,
    metric: str,
    score: float | None,
    num_samples: int,
    subsets: list[dict[str, Any]] | None = None,
    metrics: dict[str, Any] | None = None,
    errored: int = 0,
    endpoint: str | None = None,
    limit: int | None = None,
    source: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One report dict in our shape (see the module docstring); secrets are scrubbed from every value."""
    n = num_samples
    report: dict[str, Any] = {
        "benchmark": benchmark,
        "model": model,
        "backend": backend,
        "metric": metric,
        "score": score,
        "score_all": score,
        "stderr": None,
        "num_samples": n,
        "num_unique_samples": n,
        "repeats": 1,
        "subsets": subsets or [],
        "categories": [],
        "metrics": metrics or {},
        "unparsed": 0,
        "unparsed_rate": 0.0,
        "truncated": 0,
        "truncated_rate": 0.0,
        "errored": errored,
        "error_rate": errored / n if n else 0.0,
        "errors": {},
        "statuses": {},
        "prompt_version": None,
        "few_shot": None,
        "generation": None,
        "dataset_hash": None,
        "endpoint": endpoint,
        "versions": {"evalscope": __version__},
        "limit": limit,
        "source": source or [],
        **(extra or {}),
    }
    result: dict[str, Any] = scrub_secrets(report)
    return result


def write_backend_reports(
    run_dir: Path, reports: dict[str, dict[str, dict[str, Any]]], log: Path | None
) -> BackendResult:
    """Write every ``reports[model][benchmark]`` under ``run_dir/reports`` and return the BackendResult."""
    paths = [
        write_report(run_dir, model, bench, rep)
        for model, by_bench in reports.items()
        for bench, rep in by_bench.items()
    ]
    return BackendResult(reports=reports, paths=paths, log_path=log)
