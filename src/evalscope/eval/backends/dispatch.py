"""``--eval-backend X`` (X != Native): check, translate, run the adapter, write our reports and table.

The runner calls :func:`run_backend` instead of its own loop. Order: resolve the adapter (unknown name: exit
2), check its package (missing: one ``pip install 'evalscope[...]'`` line, exit 2), resolve the endpoint
(``eval_config.models[].openai_api_base``, else ``--api-url``, else the built-in simulator started here),
create the run directory, run the adapter, then write ``reports/<model>/<benchmark>.json``, ``manifest.json``
and the console table, as a native run does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from evalscope.engine.redact import register_secret, register_url_secrets, scrub
from evalscope.errors import ConfigError
from evalscope.eval.backends.base import BackendResult, BackendRun, EvalBackend, get_backend
from evalscope.eval.config import EvalConfig
from evalscope.eval.report import print_table, write_report


def resolve_backend(name: str, eval_config: dict[str, Any] | None = None) -> EvalBackend:
    """The adapter, or one ConfigError line (unknown name; package not installed).

    An adapter with an ``eval_config`` attribute gets the user's before ``available()`` (it may name the
    interpreter that has the framework)."""
    try:
        backend = get_backend(name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0]), "see docs/backends.md") from None
    if hasattr(backend, "eval_config"):
        backend.eval_config = dict(eval_config or {})
    missing = backend.available()
    if missing:
        raise ConfigError(missing)
    return backend


def backend_run_for(cfg: EvalConfig, run_dir: Path) -> BackendRun:
    """Our options folded into the backend's ``eval_config`` (its own keys win: it is the original's shape)."""
    ec: dict[str, Any] = dict(cfg.eval_config or {})
    if cfg.datasets and not ec.get("datasets"):
        ec["datasets"] = list(cfg.datasets)
    limit = ec.get("limit", cfg.limit)
    dataset_dir = ec.get("dataset_dir") or cfg.dataset_dir
    key = cfg.resolved_api_key()
    register_secret(key)
    for m in ec.get("models") or []:
        if isinstance(m, dict):
            if isinstance(m.get("key"), str) and m["key"] != "EMPTY":
                register_secret(m["key"])
            register_url_secrets(str(m.get("openai_api_base") or ""))
    if cfg.api_url:
        register_url_secrets(cfg.api_url)
    return BackendRun(
        eval_config=ec,
        run_dir=run_dir,
        dataset_dir=Path(dataset_dir) if dataset_dir else None,
        api_url=cfg.api_url,
        api_key=key,
        model=cfg.model,
        limit=int(limit) if isinstance(limit, int) and not isinstance(limit, bool) else None,
        debug=cfg.debug,
    )


def _needs_builtin_sim(cfg: EvalConfig) -> bool:
    """No endpoint anywhere: neither ``eval_config.models`` with an ``openai_api_base`` nor ``--api-url``."""
    models = (cfg.eval_config or {}).get("models") or []
    has_base = any(isinstance(m, dict) and m.get("openai_api_base") for m in models)
    return not has_base and cfg.api_url is None


def run_backend(
    cfg: EvalConfig, new_run_dir: Callable[[Path, str | None], Path], out: TextIO | None = None
) -> tuple[Path, BackendResult]:
    """Run ``cfg.eval_backend`` to completion; return the run directory and the converted reports."""
    backend = resolve_backend(cfg.eval_backend, cfg.eval_config)
    work_dir = Path((cfg.eval_config or {}).get("work_dir") or cfg.work_dir)
    sim: Any = None
    run_dir: Path | None = None
    try:
        if _needs_builtin_sim(cfg):
            from evalscope.eval.models.builtin import BUILTIN_MODEL, start_builtin_sim

            model = cfg.model or BUILTIN_MODEL
            sim = start_builtin_sim(model, ttft_ms=1.0, itl_ms=0.0)
            cfg = cfg.model_copy(update={"api_url": f"{sim.url}/v1", "model": model, "simulator": False})
        run_dir = new_run_dir(work_dir, cfg.run_name)
        run = backend_run_for(cfg, run_dir)
        started = datetime.now(UTC)
        _write_manifest(run_dir, cfg, backend, started, None)
        result = backend.run(run)
        for model_name, by_bench in result.reports.items():
            for name, rep in by_bench.items():
                path = write_report(run_dir, model_name, name, rep)
                if path not in result.paths:
                    result.paths.append(path)
        _write_manifest(run_dir, cfg, backend, started, result)
    finally:
        if sim is not None:
            sim.stop()
    if not cfg.quiet:
        stream = out or sys.stdout
        for model_name, by_bench in result.reports.items():
            print_table(model_name, by_bench, stream)
        print(scrub(f"reports: {run_dir / 'reports'}; {backend.name} log: {result.log_path}"), file=stream)
    return run_dir, result


def _write_manifest(
    run_dir: Path, cfg: EvalConfig, backend: EvalBackend, started: datetime, result: BackendResult | None
) -> None:
    """``manifest.json``: the redacted config, the backend, and (when done) the report paths and log."""
    from evalscope import __version__

    man: dict[str, Any] = {
        "evalscope": __version__,
        "backend": backend.name,
        "started": started.isoformat(),
        "config": cfg.redacted_dict(),
    }
    if result is not None:
        man["finished"] = datetime.now(UTC).isoformat()
        man["reports"] = [str(p.relative_to(run_dir)) for p in result.paths if p.is_relative_to(run_dir)]
        man["log"] = None if result.log_path is None else str(result.log_path)
    (run_dir / "manifest.json").write_bytes(orjson.dumps(man, option=orjson.OPT_INDENT_2, default=str))
