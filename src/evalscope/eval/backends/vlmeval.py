"""``--eval-backend VLMEvalKit``: multimodal API models scored by VLMEvalKit (the ``ms-vlmeval`` package).

``eval_config`` has the original EvalScope's shape::

    {"data": ["evalscope_image_mcq"],           # VLMEvalKit dataset names
     "model": [{"name": "CustomAPIModel", "type": "qwen-vl-chat",
                "api_base": "http://127.0.0.1:8000/v1/chat/completions", "key": "EMPTY",
                "temperature": 0.0, "img_size": -1}],
     "mode": "all", "limit": 20, "nproc": 16, "judge": "exact_matching", "reuse": False, "work_dir": "outputs"}

Translation: each model dict becomes a VLMEvalKit API model (``CustomAPIModel`` for any OpenAI-compatible
endpoint; ``type`` is the served model name; VLMEvalKit files it under ``type`` with ``:`` -> ``-`` and ``.`` ->
``_``, as the original does). A model without ``api_base`` gets ``--api-url``; no ``model`` list at all means one
``CustomAPIModel`` for ``--api-url``/``--model``. Keys (``key``, ``--api-key``, ``OPENAI_API_KEY`` for a judge)
reach VLMEvalKit through its environment only. ``judge`` defaults to ``exact_matching`` (no judge model, nothing
leaves the machine). ``--limit`` overrides ``limit``; a relative ``work_dir`` is under the run directory.

Data: VLMEvalKit reads ``<LMUData>/<name>.tsv``; we point ``LMUData`` at ``<run>/LMUData`` and put there our own
``evalscope_image_mcq`` (drawn by ``image_mcq.py``), or ``<name>.tsv`` found in ``--dataset-dir`` (also under
``vlmeval/`` or ``LMUData/``). With ``--dataset-dir`` a missing TSV is an error (nothing downloads); without it,
a TSV in ``$LMUData`` or ``~/LMUData`` is linked, else VLMEvalKit downloads it as it would by itself.

VLMEvalKit runs in a subprocess (``vlmeval_driver.py``) with the Python that has it: this one when ``vlmeval``
imports here, else ``$EVALSCOPE_VLMEVAL_PYTHON`` (a separate virtual environment; ms-vlmeval pulls torch).
Its log is ``logs/VLMEvalKit.log``. Results (``<model>_<data>_acc.csv``, ``status.json``) become
``reports/<model>/<data>.json`` with the categories as rows of the console table.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from evalscope.errors import ConfigError, DatasetError, EvalscopeError
from evalscope.eval.backends.base import BackendResult, BackendRun, register
from evalscope.eval.benchmarks.image_mcq import DATA_FILE, TSV_NAME

PYTHON_ENV = "EVALSCOPE_VLMEVAL_PYTHON"
LMU_ENV = "LMUData"  # VLMEvalKit's data root variable, spelled its way
DRIVER = Path(__file__).with_name("vlmeval_driver.py")
#: model-dict keys that are ours to read, not VLMEvalKit model arguments
_NOT_KWARGS = frozenset({"name", "type", "key"})
#: eval_config keys that go to VLMEvalKit's environment (secrets or endpoints of a judge), never into files
_ENV_KEYS = ("OPENAI_API_KEY", "OPENAI_API_BASE", "LOCAL_LLM")
#: what VLMEvalKit records as the prediction of a call that failed (it scores it as a wrong answer)
_FAILED = "Failed to obtain answer via API"
INSTALL_HINT = (
    "VLMEvalKit is not installed: pip install 'evalscope[vlmeval]' "
    f"(or set {PYTHON_ENV} to a Python that has ms-vlmeval)"
)


def _has_vlmeval(python: str) -> bool:
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vlmeval') is None)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def vlmeval_python() -> tuple[str | None, str | None]:
    """(interpreter that has vlmeval, None) or (None, one line saying how to get one)."""
    env = os.environ.get(PYTHON_ENV)
    if env:
        if _has_vlmeval(env):
            return env, None
        return None, f"{PYTHON_ENV}={env} has no vlmeval: pip install ms-vlmeval into it, or unset it"
    if importlib.util.find_spec("vlmeval") is not None:
        return sys.executable, None
    return None, INSTALL_HINT


def _chat_url(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def norm_model_name(model_type: str) -> str:
    """VLMEvalKit's folder name for a ``CustomAPIModel`` of this ``type`` (the original's rule)."""
    return os.path.basename(model_type).replace(":", "-").replace(".", "_")


def translate(run: BackendRun) -> tuple[dict[str, Any], dict[str, str]]:
    """(the driver's run.json, the environment it needs) from the original's ``eval_config``."""
    cfg = run.eval_config or {}
    if not isinstance(cfg, dict):
        raise ConfigError("eval_config for VLMEvalKit must be a mapping with data and model")
    data = cfg.get("data") or []
    if isinstance(data, str):
        data = [data]
    if not data:
        raise ConfigError("eval_config.data is empty: name VLMEvalKit datasets, e.g. ['evalscope_image_mcq']")
    models_in = cfg.get("model")
    if not models_in:
        if not run.api_url:
            raise ConfigError("VLMEvalKit needs eval_config.model or --api-url with --model")
        models_in = [{"name": "CustomAPIModel", "type": run.model or "model"}]
    if isinstance(models_in, dict | str):
        models_in = [models_in]
    env: dict[str, str] = {}
    models: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(models_in):
        if isinstance(m, str):
            raise ConfigError(
                f"eval_config.model[{i}] = {m!r}: only API models are supported; give a dict with name "
                "CustomAPIModel, type (the served model name) and api_base"
            )
        if not isinstance(m, dict) or not m.get("name"):
            raise ConfigError(
                f"eval_config.model[{i}] needs a name (CustomAPIModel for an OpenAI-compatible API)"
            )
        name = str(m["name"])
        kwargs = {k: v for k, v in m.items() if k not in _NOT_KWARGS}
        if name == "CustomAPIModel" or "api_base" in m or run.api_url:
            mtype = str(m.get("type") or run.model or "model")
            kwargs["class"] = "CustomAPIModel" if name == "CustomAPIModel" else name
            kwargs["model"] = mtype
            folder = norm_model_name(mtype)
        else:
            raise ConfigError(f"eval_config.model[{i}] ({name}) has no api_base and no --api-url was given")
        api_base = m.get("api_base") or run.api_url
        if not api_base:
            raise ConfigError(f"eval_config.model[{i}] needs api_base (or pass --api-url)")
        kwargs["api_base"] = _chat_url(str(api_base))
        kwargs.setdefault("temperature", 0)
        kwargs.setdefault("img_size", -1)
        key = m.get("key") or run.api_key
        if key:
            env[f"EVALSCOPE_VLMEVAL_KEY_{i}"] = str(key)
        models[folder] = kwargs
    for k in _ENV_KEYS:
        if cfg.get(k):
            env[k] = str(cfg[k])
    work_dir = Path(str(cfg.get("work_dir") or "outputs"))
    if not work_dir.is_absolute():
        work_dir = run.run_dir / work_dir
    limit = run.limit if run.limit is not None else cfg.get("limit")
    mode = cfg.get("mode") or "all"
    if mode not in ("all", "infer", "eval"):
        raise ConfigError(f"eval_config.mode {mode!r}: use all, infer or eval")
    plan = {
        "models": models,
        "data": [str(d) for d in data],
        "work_dir": str(work_dir),
        "mode": mode,
        "limit": int(limit) if limit is not None else None,
        "nproc": int(cfg.get("nproc") or cfg.get("api_nproc") or 4),
        "retry": int(cfg.get("retry") or 3),
        "judge": cfg.get("judge") or "exact_matching",
        "reuse": bool(cfg.get("reuse", False)),
        "verbose": bool(cfg.get("verbose", False)),
    }
    return plan, env


def prepare_data(run: BackendRun, names: list[str]) -> Path:
    """``<run>/LMUData`` with ``<name>.tsv`` for every dataset we can supply locally (see module docstring)."""
    lmu = run.run_dir / "LMUData"
    lmu.mkdir(parents=True, exist_ok=True)
    for name in names:
        dst = lmu / f"{name}.tsv"
        if dst.exists():
            continue
        if name == TSV_NAME:
            shutil.copyfile(DATA_FILE, dst)
            continue
        src = _find_tsv(run, name)
        if src is not None:
            dst.symlink_to(src.resolve())
    return lmu


def _find_tsv(run: BackendRun, name: str) -> Path | None:
    if run.dataset_dir is not None:
        for sub in ("", "vlmeval", "LMUData"):
            p = run.dataset_dir / sub / f"{name}.tsv"
            if p.is_file():
                return p
        raise DatasetError(f"VLMEvalKit dataset {name}: no {name}.tsv under --dataset-dir {run.dataset_dir}")
    for root in (os.environ.get(LMU_ENV), str(Path.home() / "LMUData")):
        if root and (Path(root) / f"{name}.tsv").is_file():
            return Path(root) / f"{name}.tsv"
    return None


@register
class VLMEvalKitBackend:
    """Image benchmarks through VLMEvalKit, models behind OpenAI-compatible endpoints."""

    name = "VLMEvalKit"
    extra = "vlmeval"

    def available(self) -> str | None:
        return vlmeval_python()[1]

    def run(self, run: BackendRun) -> BackendResult:
        from evalscope.eval.backends.thirdparty import last_error_line, run_subprocess

        plan, secrets = translate(run)
        python, why = vlmeval_python()
        if python is None:
            raise ConfigError(why or INSTALL_HINT)
        lmu = prepare_data(run, plan["data"])
        if plan["mode"] != "eval":
            check_endpoints(plan, secrets)
        cfg_dir = run.run_dir / "configs"
        cfg_dir.mkdir(parents=True, exist_ok=True)
        plan_path = cfg_dir / "vlmeval_run.json"
        plan_path.write_text(json.dumps(plan, indent=2), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVALSCOPE_VLMEVAL_KEY_")}
        env.update(secrets)
        env[LMU_ENV] = str(lmu)
        log_path = run.run_dir / "logs" / "VLMEvalKit.log"
        rc = run_subprocess([python, str(DRIVER), str(plan_path)], log_path, env)
        if rc != 0:
            raise EvalscopeError(
                f"VLMEvalKit failed ({last_error_line(log_path) or f'exit code {rc}'}); see {log_path}"
            )
        return convert(run, plan, lmu, log_path)


def check_endpoints(plan: dict[str, Any], secrets: dict[str, str]) -> None:
    """Preflight every model's endpoint with our engine before VLMEvalKit starts (its imports take half a
    minute, and it records an unreachable endpoint as wrong answers): EndpointError, exit 3, in one line."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from evalscope.engine import Client
    from evalscope.engine.preflight import preflight

    async def one(i: int, kwargs: dict[str, Any]) -> None:
        key = secrets.get(f"EVALSCOPE_VLMEVAL_KEY_{i}")
        async with Client(kwargs["api_base"], str(kwargs["model"]), api_key=key, stream=False) as c:
            await preflight(c, check_model=True)

    async def all_models() -> None:
        for i, kwargs in enumerate(plan["models"].values()):
            await one(i, kwargs)

    with ThreadPoolExecutor(1) as pool:  # its own event loop, also when our caller runs one
        pool.submit(asyncio.run, all_models()).result()


def _acc_file(model_dir: Path, model: str, data: str) -> Path | None:
    exact = model_dir / f"{model}_{data}_acc.csv"
    if exact.is_file():
        return exact
    found = sorted(model_dir.glob(f"{model}_{data}_*.csv"))
    return found[0] if found else None


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def convert(run: BackendRun, plan: dict[str, Any], lmu: Path, log_path: Path | None) -> BackendResult:
    """VLMEvalKit's accuracy tables -> ``reports[model][data]`` in our shape (score = ``Overall``)."""
    from evalscope.eval.backends.reports import backend_report, write_backend_reports

    work = Path(plan["work_dir"])
    reports: dict[str, dict[str, dict[str, Any]]] = {}
    for model in plan["models"]:
        mdir = work / model
        status: dict[str, Any] = {}
        if (mdir / "status.json").is_file():
            status = json.loads((mdir / "status.json").read_text(encoding="utf-8")).get("datasets") or {}
        for data in plan["data"]:
            acc = _acc_file(mdir, model, data)
            if acc is None:
                raise EvalscopeError(f"VLMEvalKit wrote no result table for {model} x {data}; see {log_path}")
            with acc.open(encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            overall = next(
                (r for r in rows if r.get("split") in (None, "none", "dev", "test")), rows[0] if rows else {}
            )
            score = _num(overall.get("Overall"))
            cats = [
                {"name": k, "score": _num(v), "num_samples": None}
                for k, v in overall.items()
                if k not in ("split", "Overall") and _num(v) is not None
            ]
            samples_path = mdir / f"{model}_{data}_evalscope_samples.jsonl"
            samples = []
            if samples_path.is_file():
                samples = [
                    json.loads(ln) for ln in samples_path.read_text(encoding="utf-8").splitlines() if ln
                ]
                for c in cats:
                    c["num_samples"] = sum(1 for s in samples if str(s.get("category")) == c["name"])
            n = len(samples) if samples else _tsv_rows(lmu / f"{data}.tsv", plan.get("limit"))
            failed = sum(1 for s in samples if str(s.get("prediction")).startswith(_FAILED))
            st = status.get(data) or {}
            source = [
                str(p.relative_to(run.run_dir)) if p.is_relative_to(run.run_dir) else str(p)
                for p in (acc, samples_path)
                if p.is_file()
            ]
            rep = backend_report(
                backend="VLMEvalKit",
                benchmark=data,
                model=model,
                metric="acc",
                score=score,
                num_samples=n,
                errored=failed,
                metrics={"Overall": score, **(st.get("metrics") or {})},
                endpoint=plan["models"][model].get("api_base"),
                limit=plan.get("limit"),
                source=source,
                extra={"categories": cats, "judge": st.get("judge_model") or plan.get("judge")},
            )
            reports.setdefault(model, {})[data] = rep
    return write_backend_reports(run.run_dir, reports, log_path)


def _tsv_rows(path: Path, limit: int | None) -> int:
    try:
        with path.open(encoding="utf-8") as f:
            n = max(0, sum(1 for _ in f) - 1)
    except OSError:
        return 0
    return min(n, limit) if limit is not None else n
