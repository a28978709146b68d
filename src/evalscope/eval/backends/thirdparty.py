"""``--eval-backend ThirdParty``: the original EvalScope's third-party tasks; here ToolBench-static.

``eval_config`` has the original's shape::

    {"tool": "ToolBench",                       # optional; the only third-party task
     "infer_args": {"model_name_or_path": ..., "model_type": ..., "data_path": ..., "output_dir": "output_res",
                    "deploy_type": "swift", "max_new_tokens": 2048, "num_infer_samples": None},
     "eval_args": {"input_path": "output_res", "output_path": "output_res"}}

What changes: the model is an OpenAI-compatible endpoint (``--api-url`` / ``infer_args.api_base``, ``--model``
or ``model_type``), so ``deploy_type: swift`` means "a ``swift deploy`` server", not weights loaded in-process;
the functions go in the request's ``tools`` field and calls come back as ``tool_calls``. ``data_path`` holds
``in_domain.json`` and ``out_of_domain.json``; without it, ``<dataset-dir>/toolbench_static`` when present, else
the small sample shipped in ``evalscope/eval/backends/data/toolbench_static`` (our own dozen steps, in the public
format). Relative output paths are under the run directory. Nothing extra to install: the job runs on our own
engine, in a subprocess (``toolbench_job``) whose log is ``logs/ThirdParty.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from evalscope.errors import ConfigError, DatasetError, EndpointError, EvalscopeError
from evalscope.eval.backends.base import BackendResult, BackendRun, register

SAMPLE_DIR = Path(__file__).with_name("data") / "toolbench_static"
BENCHMARK = "toolbench_static"
PRIMARY = "Avg.F1"
_SWIFT_TYPES = ("swift", "vllm", "lmdeploy", "openai", "api", None)


def _rel(base: Path, value: Any, default: str) -> Path:
    p = Path(str(value)) if value else Path(default)
    return p if p.is_absolute() else base / p


def translate(run: BackendRun) -> dict[str, Any]:
    """The job file's settings from the original's ``eval_config`` (ConfigError/DatasetError: one line)."""
    cfg = run.eval_config or {}
    if not isinstance(cfg, dict):
        raise ConfigError("eval_config for ThirdParty must be a mapping with infer_args and eval_args")
    tool = str(cfg.get("tool", "ToolBench"))
    if tool.replace("-", "").replace("_", "").lower() not in ("toolbench", "toolbenchstatic"):
        raise ConfigError(
            f"eval_config.tool {tool!r} is not a ThirdParty task; the one supported is ToolBench"
        )
    infer = cfg.get("infer_args") or {}
    evals = cfg.get("eval_args") or {}
    if not isinstance(infer, dict) or not isinstance(evals, dict):
        raise ConfigError("eval_config.infer_args and eval_config.eval_args must be mappings")
    deploy = infer.get("deploy_type")
    api_url = infer.get("api_base") or run.api_url
    if not api_url:
        how = " (start `swift deploy` and give its URL)" if deploy == "swift" else ""
        raise ConfigError(
            "ThirdParty/ToolBench asks an OpenAI-compatible endpoint: pass --api-url or infer_args.api_base"
            + how
        )
    if deploy not in _SWIFT_TYPES:
        raise ConfigError(
            f"infer_args.deploy_type {deploy!r} is not supported; use an OpenAI-compatible endpoint (deploy_type "
            "openai, or swift for a `swift deploy` server) with --api-url"
        )
    data_path = _data_path(run, infer.get("data_path"))
    model = run.model or infer.get("model_type") or ""
    if not model and infer.get("model_name_or_path"):
        model = Path(str(infer["model_name_or_path"])).name
    limit = run.limit if run.limit is not None else infer.get("num_infer_samples")
    out_dir = _rel(run.run_dir, infer.get("output_dir"), "output_res")
    out_path = _rel(run.run_dir, evals.get("output_path"), str(out_dir))
    domains = [
        d
        for d in ("in_domain", "out_of_domain")
        if not data_path.is_dir() or (data_path / f"{d}.json").is_file()
    ]
    if not domains:
        raise DatasetError(f"{data_path} has neither in_domain.json nor out_of_domain.json")
    if not data_path.is_dir():
        domains = [data_path.stem]
    return {
        "data_path": str(data_path),
        "output_dir": str(out_dir),
        "output_path": str(out_path),
        "domains": domains,
        "model": model,
        "api_url": api_url,
        "stream": bool(infer.get("stream", True)),
        "max_tokens": int(infer.get("max_new_tokens") or 2048),
        "temperature": infer.get("temperature"),
        "limit": int(limit) if limit is not None else None,
        "concurrency": int(infer.get("batch_size") or infer.get("concurrency") or 8),
    }


def _data_path(run: BackendRun, given: Any) -> Path:
    if given:
        p = Path(str(given)).expanduser()
        if not p.is_absolute() and not p.exists() and run.dataset_dir is not None:
            p = run.dataset_dir / p
        if not p.exists():
            raise DatasetError(
                f"infer_args.data_path {given!r} does not exist (a folder with in_domain.json)"
            )
        return p
    if run.dataset_dir is not None and (run.dataset_dir / "toolbench_static").is_dir():
        return run.dataset_dir / "toolbench_static"
    return SAMPLE_DIR


def run_subprocess(argv: list[str], log_path: Path, env: dict[str, str]) -> int:
    """Run ``argv`` in its own process group with stdout+stderr to ``log_path``; stop the group if we are
    interrupted (by its id, never by name)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            return proc.wait()
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
            raise


def last_error_line(log_path: Path) -> str:
    """The last ``error:`` line of a job log (what the job says went wrong), else its last line."""
    try:
        lines = [
            ln for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()
        ]
    except OSError:
        return ""
    for ln in reversed(lines):
        if ln.startswith("error: "):
            return ln[len("error: ") :]
    return lines[-1] if lines else ""


@register
class ThirdPartyBackend:
    """ToolBench-static against an OpenAI-compatible endpoint (tool calls via ``tools`` / ``tool_calls``)."""

    name = "ThirdParty"
    extra = ""

    def available(self) -> str | None:
        return None  # runs on our own engine: nothing to install

    def run(self, run: BackendRun) -> BackendResult:
        job = translate(run)
        cfg_dir = run.run_dir / "configs"
        cfg_dir.mkdir(parents=True, exist_ok=True)
        job_path = cfg_dir / "toolbench_job.json"
        job_path.write_text(json.dumps(job, indent=2), encoding="utf-8")  # no key in it
        log_path = run.run_dir / "logs" / "ThirdParty.log"
        env = dict(os.environ)
        env.pop("EVALSCOPE_BACKEND_API_KEY", None)
        if run.api_key:
            env["EVALSCOPE_BACKEND_API_KEY"] = run.api_key
        argv = [sys.executable, "-m", "evalscope.eval.backends.toolbench_job", str(job_path)]
        rc = run_subprocess(argv, log_path, env)
        if rc != 0:
            why = last_error_line(log_path) or f"exit code {rc}"
            if rc == 3:
                raise EndpointError(f"ToolBench job: {why}")
            if rc == 2:
                raise ConfigError(f"ToolBench job: {why}")
            raise EvalscopeError(f"ToolBench job failed ({why}); see {log_path}")
        return convert(run, job, log_path)


def convert(run: BackendRun, job: dict[str, Any], log_path: Path | None) -> BackendResult:
    """metrics/scores written by the job -> one ``toolbench_static`` report with a subset per domain."""
    from evalscope.eval.backends.reports import backend_report, write_backend_reports
    from evalscope.eval.backends.toolbench_score import StepScore, aggregate

    out = Path(job["output_path"])
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    model = summary.get("model") or job.get("model") or "model"
    every: list[StepScore] = []
    subsets = []
    failed = 0
    for domain, info in summary["domains"].items():
        steps = [
            _step(json.loads(ln)) for ln in (out / domain / "scores.jsonl").read_text().splitlines() if ln
        ]
        every += steps
        failed += int(info.get("failed") or 0)
        subsets.append(
            {
                "name": domain,
                "score": info["metrics"].get(PRIMARY),
                "num_samples": len(steps),
                "metrics": info["metrics"],
            }
        )
    overall = aggregate(every)
    rel = [
        str(p.relative_to(run.run_dir)) if p.is_relative_to(run.run_dir) else str(p)
        for p in sorted(out.rglob("*.json*"))
    ]
    rep = backend_report(
        backend="ThirdParty",
        benchmark=BENCHMARK,
        model=model,
        metric=PRIMARY,
        score=overall.metrics.get(PRIMARY),
        num_samples=len(every),
        subsets=subsets,
        metrics=overall.metrics,
        errored=failed,
        endpoint=job.get("api_url"),
        limit=job.get("limit"),
        source=rel,
        extra={"steps_kept": overall.kept},
    )
    return write_backend_reports(run.run_dir, {model: {BENCHMARK: rep}}, log_path)


def _step(d: dict[str, Any]) -> Any:
    from evalscope.eval.backends.toolbench_score import StepScore

    kind = d.get("f1_kind")
    return StepScore(
        kept=bool(d["kept"]),
        hallucinated=bool(d["hallucinated"]),
        plan_em=d.get("plan_em"),
        act_em=d.get("act_em"),
        f1=d.get("f1"),
        easy=kind == "easy",
        both=kind == "both",
        rouge_l=d.get("rouge_l"),
        ref_plan=d.get("ref_plan", ""),
        pred_plan=d.get("pred_plan", ""),
    )
