"""The OpenCompass adapter: our config and endpoint -> an OpenCompass config file -> ``opencompass`` in a
subprocess -> our reports.

Models are OpenCompass ``OpenAISDK`` API models pointed at any OpenAI-compatible endpoint. Datasets are the
configs the original EvalScope's OpenCompass backend uses (``gsm8k_gen_1d7fe4``, ``ARC_c_gen_1e0de5``,
``ceval_gen_5f30c7``, ``cmmlu_gen_c13365``, ``math_gen_265cce``, ...), with each loader's ``path`` replaced by
local data (``--dataset-dir``): the shared layout where OpenCompass's loader reads it as it is, a layout built
in the run directory where it does not (MATH). Nothing downloads: the subprocess runs with the Hugging Face
offline switches and a local whitespace tokenizer (OpenCompass's API models count tokens with tiktoken,
which would fetch its encoding from the network). The framework runs with the interpreter named by
``eval_config.python``, ``$EVALSCOPE_OPENCOMPASS_PYTHON`` or the current one.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalscope.errors import ConfigError, DatasetError, EndpointError, EvalscopeError
from evalscope.eval.backends.base import BackendResult, BackendRun, register
from evalscope.eval.backends.convert import SampleRecord, accuracy_report, write_samples
from evalscope.eval.config import mask_model_keys, scrub_secrets

PYTHON_ENV = "EVALSCOPE_OPENCOMPASS_PYTHON"
INSTALL_HINT = "pip install 'evalscope[opencompass]'"
_CONFIGS = "opencompass.configs.datasets"


@dataclass(frozen=True, slots=True)
class OCDataset:
    """One OpenCompass dataset group and where its loader finds our data."""

    name: str  # the original EvalScope's dataset name
    module: str  # the OpenCompass dataset config module
    variable: str  # the list of dataset dicts it defines
    data: str  # path below --dataset-dir
    layout: str  # "direct": the loader reads our files as they are; "built": we write its layout
    abbr: str  # the dataset abbr (exact) or abbr prefix (ending in '-') in OpenCompass's outputs
    few_shot: int = 0

    def matches(self, abbr: str) -> str | None:
        """The subset name when an output file ``abbr`` belongs to this group, else None."""
        if self.abbr.endswith("-"):
            if abbr.startswith(self.abbr) and not abbr.startswith(self.abbr + "test-"):
                return abbr[len(self.abbr) :]
            return None
        return abbr if abbr == self.abbr else None


#: The datasets this adapter runs from local data (name -> group). ARC reads the Test split, as our native
#: ``arc`` does (OpenCompass's ARC_c_gen config reads Dev), so the two runs score the same questions.
DATASETS: dict[str, OCDataset] = {
    d.name: d
    for d in (
        OCDataset(
            "gsm8k", f"{_CONFIGS}.gsm8k.gsm8k_gen_1d7fe4", "gsm8k_datasets", "gsm8k", "direct", "gsm8k", 4
        ),
        OCDataset(
            "ARC_c",
            f"{_CONFIGS}.ARC_c.ARC_c_gen_1e0de5",
            "ARC_c_datasets",
            "arc/ARC-Challenge/ARC-Challenge-Test.jsonl",
            "direct",
            "ARC-c",
        ),
        OCDataset(
            "ARC_e",
            f"{_CONFIGS}.ARC_e.ARC_e_gen_1e0de5",
            "ARC_e_datasets",
            "arc/ARC-Easy/ARC-Easy-Test.jsonl",
            "direct",
            "ARC-e",
        ),
        OCDataset(
            "ceval", f"{_CONFIGS}.ceval.ceval_gen_5f30c7", "ceval_datasets", "ceval", "direct", "ceval-", 5
        ),
        OCDataset(
            "cmmlu", f"{_CONFIGS}.cmmlu.cmmlu_gen_c13365", "cmmlu_datasets", "cmmlu", "direct", "cmmlu-"
        ),
        OCDataset(
            "math",
            f"{_CONFIGS}.math.math_gen_265cce",
            "math_datasets",
            "math/simple-evals/math_test.csv",
            "built",
            "math",
            4,
        ),
    )
}

#: OpenCompass's API meta template (HUMAN -> user, BOT -> assistant, SYSTEM reserved), by the name the
#: original EvalScope gives it.
API_META_TEMPLATE: dict[str, Any] = {
    "round": [
        {"role": "HUMAN", "api_role": "HUMAN"},
        {"role": "BOT", "api_role": "BOT", "generate": True},
    ],
    "reserved_roles": [{"role": "SYSTEM", "api_role": "SYSTEM"}],
}
META_TEMPLATES = {"default-api-meta-template-oc": API_META_TEMPLATE}

#: ``models[]`` keys passed to OpenCompass's model dict as they are (the original's ApiModelConfig fields
#: plus OpenAISDK's own); ``path``, ``openai_api_base``, ``key``, ``is_chat``, ``meta_template`` are handled.
_MODEL_PASSTHROUGH = {
    "abbr",
    "batch_size",
    "max_out_len",
    "max_seq_len",
    "query_per_second",
    "retry",
    "temperature",
    "top_logprobs",
    "logprobs",
    "extra_body",
    "mode",
    "run_cfg",
    "generation_kwargs",
    "max_workers",
    "timeout",
    "verbose",
    "think_tag",
    "tokenizer_path",
}
_MODEL_DEFAULTS: dict[str, Any] = {
    "batch_size": 8,
    "max_seq_len": 32768,
    "query_per_second": 16,
    "retry": 2,
}


def find_dataset(name: str) -> OCDataset:
    """The group for ``name`` (case-insensitive; ``ARC-c`` = ``ARC_c``), or one ConfigError line."""
    key = name.strip().replace("-", "_").lower()
    for d in DATASETS.values():
        if d.name.lower() == key:
            return d
    raise ConfigError(
        f"OpenCompass dataset {name!r} has no local-data mapping here",
        f"choose from {', '.join(DATASETS)}",
    )


def python_for(eval_config: dict[str, Any]) -> str:
    """The interpreter that runs OpenCompass."""
    return str(eval_config.get("python") or os.environ.get(PYTHON_ENV) or sys.executable)


def api_base(url: str) -> str:
    """``http://h:p/v1/chat/completions`` (the original's form) or ``http://h:p`` -> ``http://h:p/v1``."""
    u = url.strip().rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if u.endswith(suffix):
            u = u[: -len(suffix)]
    if "://" in u and "/" not in u.split("://", 1)[1]:
        u += "/v1"
    return u


@dataclass(slots=True)
class ModelSpec:
    """One OpenAISDK model: what goes into the config (no key) and the key (into the environment)."""

    name: str
    base: str
    key: str | None
    fields: dict[str, Any]


def model_specs(run: BackendRun) -> list[ModelSpec]:
    """``eval_config.models`` (the original's shape), or one model from ``--api-url`` / ``--model``."""
    raw = run.eval_config.get("models")
    if not raw:
        if not run.api_url:
            raise ConfigError(
                "OpenCompass needs an endpoint", "pass --api-url or eval_config.models[].openai_api_base"
            )
        raw = [{"path": run.model or "default", "openai_api_base": run.api_url}]
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise ConfigError(
            "eval_config.models must be a list of mappings", "e.g. [{path: NAME, openai_api_base: URL}]"
        )
    specs: list[ModelSpec] = []
    for i, m in enumerate(raw):
        path = m.get("path") or run.model
        if not path:
            raise ConfigError(f"eval_config.models[{i}] has no 'path' (the served model name)")
        base = m.get("openai_api_base") or run.api_url
        if not base:
            raise ConfigError(f"eval_config.models[{i}] has no 'openai_api_base'", "or pass --api-url")
        if m.get("is_chat") is False:
            raise ConfigError(
                f"eval_config.models[{i}]: is_chat: false is not supported by the OpenCompass adapter",
                "OpenCompass's OpenAISDK model speaks chat completions; serve a chat endpoint",
            )
        unknown = sorted(
            set(m) - _MODEL_PASSTHROUGH - {"path", "openai_api_base", "key", "is_chat", "meta_template"}
        )
        if unknown:
            raise ConfigError(
                f"eval_config.models[{i}]: unknown key(s) {', '.join(unknown)}",
                f"known: path, openai_api_base, key, is_chat, meta_template, {', '.join(sorted(_MODEL_PASSTHROUGH))}",
            )
        fields = {**_MODEL_DEFAULTS, **{k: v for k, v in m.items() if k in _MODEL_PASSTHROUGH}}
        fields.setdefault("abbr", os.path.basename(str(path).rstrip("/")) or str(path))
        tmpl = m.get("meta_template", "default-api-meta-template-oc")
        if isinstance(tmpl, str):
            if tmpl not in META_TEMPLATES:
                raise ConfigError(
                    f"eval_config.models[{i}].meta_template {tmpl!r} is unknown",
                    f"use {', '.join(META_TEMPLATES)} or a mapping",
                )
            tmpl = META_TEMPLATES[tmpl]
        if tmpl is not None:
            fields["meta_template"] = tmpl
        key = m.get("key") if m.get("key") not in (None, "") else run.api_key
        specs.append(ModelSpec(str(path), api_base(str(base)), key, fields))
    keys = {s.key for s in specs if s.key and s.key != "EMPTY"}
    if len(keys) > 1:
        raise ConfigError(
            "eval_config.models use different API keys", "run one model per task (OpenCompass reads one key)"
        )
    return specs


# ------------------------------------------------------------------------------------- local data


def build_math(src: Path, dest_dir: Path) -> Path:
    """OpenCompass's MATH layout (``math.json``: {id: {problem, solution}} with ``\\boxed{answer}`` in the
    solution) from the simple-evals CSV (Question, Answer). Only the boxed answer is read by its loader."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, str]] = {}
    with src.open(encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            out[str(i)] = {"problem": row["Question"], "solution": f"\\boxed{{{row['Answer']}}}"}
    path = dest_dir / "math.json"
    path.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return dest_dir


def local_paths(groups: list[OCDataset], dataset_dir: Path | None, oc_dir: Path) -> dict[str, str]:
    """Dataset name -> the absolute path its OpenCompass loader reads (built here when needed)."""
    if dataset_dir is None:
        raise ConfigError(
            "the OpenCompass backend reads local data only",
            "pass --dataset-dir (the shared datasets layout) or eval_config.dataset_dir",
        )
    out: dict[str, str] = {}
    for g in groups:
        src = (dataset_dir / g.data).resolve()
        if not src.exists():
            raise DatasetError(
                f"OpenCompass dataset {g.name}: {src} not found", f"--dataset-dir must hold {g.data}"
            )
        if g.layout == "built":
            out[g.name] = str(build_math(src, oc_dir / "data" / "math"))
        else:
            out[g.name] = str(src)
    return out


def write_tokenizer(dest: Path) -> Path:
    """A whitespace word-level tokenizer (``tokenizer.json``): OpenCompass counts prompt tokens with it to
    trim prompts, and it loads offline (tiktoken's encodings are downloaded on first use)."""
    dest.mkdir(parents=True, exist_ok=True)
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": 0,
                "content": "[UNK]",
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"},
    }
    (dest / "tokenizer.json").write_text(json.dumps(tok), encoding="utf-8")
    (dest / "tokenizer_config.json").write_text(
        json.dumps(
            {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "model_max_length": 10**9}
        ),
        encoding="utf-8",
    )
    return dest


# ------------------------------------------------------------------------------------- config file


def reader_range(limit: Any) -> Any:
    """Our ``limit`` for OpenCompass's reader: an int N -> ``'[0:N]'`` (the first N of each dataset, as our
    native runner takes them; OpenCompass's own int means N random ones); a slice string or a fraction as is."""
    if limit is None:
        return None
    if isinstance(limit, bool):
        raise ConfigError(f"eval_config.limit={limit!r} must be an int, a fraction or a '[a:b]' slice")
    if isinstance(limit, int):
        if limit < 1:
            raise ConfigError(f"eval_config.limit={limit} must be >= 1")
        return f"[0:{limit}]"
    if isinstance(limit, float) and 0 < limit <= 1:
        return limit
    if isinstance(limit, str) and limit.strip().startswith("[") and limit.strip().endswith("]"):
        return limit.strip()
    raise ConfigError(f"eval_config.limit={limit!r} must be an int, a fraction or a '[a:b]' slice")


def render_config(
    groups: list[OCDataset], paths: dict[str, str], models: list[ModelSpec], tokenizer: Path, limit: Any
) -> str:
    """The OpenCompass config file (Python, read by mmengine). No secret is written: ``key='ENV'`` makes
    OpenAISDK read ``$OPENAI_API_KEY``, which the adapter sets in the subprocess only."""
    lines = [
        "# Written by evalscope's OpenCompass adapter; the API key comes from $OPENAI_API_KEY (key='ENV').",
        "from mmengine.config import read_base",
        "from opencompass.models import OpenAISDK",
        "from opencompass.partitioners import NaivePartitioner",
        "from opencompass.runners import LocalRunner",
        "from opencompass.tasks import OpenICLEvalTask, OpenICLInferTask",
        "",
        "with read_base():",
    ]
    for i, g in enumerate(groups):
        lines.append(f"    from {g.module} import {g.variable} as _group_{i}")
    lines += ["", "datasets = []"]
    for i, g in enumerate(groups):
        lines += [
            f"for _d in _group_{i}:",
            f"    _d['path'] = {paths[g.name]!r}",
        ]
        if limit is not None:
            lines.append(f"    _d['reader_cfg']['test_range'] = {limit!r}")
        lines.append("    datasets.append(_d)")
    lines += ["", "models = ["]
    for m in models:
        fields = dict(m.fields)
        fields.setdefault("tokenizer_path", str(tokenizer))
        body = ", ".join(f"{k}={v!r}" for k, v in sorted(fields.items()))
        lines.append(
            f"    dict(type=OpenAISDK, path={m.name!r}, openai_api_base={m.base!r}, key='ENV', {body}),"
        )
    lines += [
        "]",
        "",
        "# one task per stage and model: every dataset runs in the same process (task start-up is slow)",
        "infer = dict(partitioner=dict(type=NaivePartitioner, n=100000),",
        "             runner=dict(type=LocalRunner, max_num_workers=1, task=dict(type=OpenICLInferTask)))",
        "eval = dict(partitioner=dict(type=NaivePartitioner, n=100000),",
        "            runner=dict(type=LocalRunner, max_num_workers=1, task=dict(type=OpenICLEvalTask)))",
        "",
        "del _d" + "".join(f", _group_{i}" for i in range(len(groups))),
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- running


def _check_endpoint(base: str, key: str | None) -> None:
    """GET ``<base>/models`` before starting a framework that would retry a dead endpoint for minutes."""
    req = urllib.request.Request(f"{base}/models")
    if key and key != "EMPTY":
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            resp.read(1 << 16)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise EndpointError(
                f"{base} rejected the API key (HTTP {exc.code})", "check key / --api-key"
            ) from None
        if exc.code != 404:  # some servers have no /models; the framework will tell
            raise EndpointError(f"{base}/models answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EndpointError(
            f"cannot reach {base} ({reason})", "start the server or fix openai_api_base"
        ) from None


def subprocess_env(python: str, oc_dir: Path, key: str | None) -> dict[str, str]:
    """The framework's environment: offline, our data cache, the key, the interpreter's bin dir first."""
    env = dict(os.environ)
    env.pop("DATASET_SOURCE", None)  # ModelScope/HF would fetch from a hub
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        COMPASS_DATA_CACHE=str(oc_dir / "data"),
        OPENAI_API_KEY=key or "EMPTY",
        PYTHONUNBUFFERED="1",
    )
    no_proxy = env.get("NO_PROXY", env.get("no_proxy", ""))
    env["NO_PROXY"] = env["no_proxy"] = ",".join(x for x in (no_proxy, "127.0.0.1", "localhost") if x)
    if env.get(
        "PYTHONPATH"
    ):  # the framework runs in the run directory: keep relative entries meaning the same
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) if p else p for p in env["PYTHONPATH"].split(os.pathsep)
        )
    bindir = str(Path(python).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def run_framework(
    cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, timeout: float | None
) -> int:
    """Run in its own process group with output to ``log_path``; Ctrl-C / timeout stop the whole group."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return proc.wait(timeout=timeout)
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            raise


def _last_error(log_path: Path) -> str:
    """The last line of the log that looks like an error (for the one-line message)."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines[-400:]):
        s = line.strip()
        if s and ("Error" in s or "error" in s or "Exception" in s):
            return s[:200]
    return ""


# ------------------------------------------------------------------------------------- results


def latest_exp_dir(work: Path) -> Path | None:
    """OpenCompass's newest ``<work>/<timestamp>`` directory."""
    dirs = sorted((p for p in work.iterdir() if p.is_dir()), key=lambda p: p.name) if work.is_dir() else []
    return dirs[-1] if dirs else None


def _first(v: Any) -> Any:
    return v[0] if isinstance(v, list) and v else v


def _as_text(v: Any) -> str | None:
    v = _first(v)
    return None if v is None else str(v)


def sample_records(result: dict[str, Any], predictions: dict[str, Any], subset: str) -> list[SampleRecord]:
    """Per-sample records from one results file (``details`` in any of OpenCompass's evaluator shapes: a list
    of {pred, answer, correct}, or {index: {predictions, references[, correct|is_correct]}}) and its
    predictions file ({index: {origin_prompt, prediction, gold}})."""
    details = result.get("details")
    items: list[tuple[int, dict[str, Any]]] = []
    if isinstance(details, list):
        items = [(i, d) for i, d in enumerate(details) if isinstance(d, dict)]
    elif isinstance(details, dict):
        items = sorted(
            ((int(k), v) for k, v in details.items() if k.isdigit() and isinstance(v, dict)),
            key=lambda kv: kv[0],
        )
    out: list[SampleRecord] = []
    for i, d in items:
        pred = predictions.get(str(i)) or {}
        extracted = d.get("pred", d.get("predictions"))
        gold = d.get("answer", d.get("references", pred.get("gold")))
        if "correct" in d:
            correct = bool(all(d["correct"]) if isinstance(d["correct"], list) else d["correct"])
        elif "is_correct" in d:
            correct = bool(_first(d["is_correct"]))
        else:
            correct = _as_text(extracted) == _as_text(gold)
        prompt = pred.get("origin_prompt")
        if isinstance(prompt, list):  # chat-style prompts: the last user turn
            prompt = next((p.get("prompt") for p in reversed(prompt) if isinstance(p, dict)), None)
        out.append(
            SampleRecord(
                index=i,
                subset=subset,
                correct=correct,
                prediction=_as_text(pred.get("prediction", d.get("origin_prediction"))),
                extracted=_as_text(extracted),
                gold=_as_text(gold),
                prompt=None if prompt is None else str(prompt),
            )
        )
    return out


def convert_outputs(
    exp: Path,
    groups: list[OCDataset],
    model: ModelSpec,
    run: BackendRun,
    version: str | None,
    paths: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """Benchmark name -> our report, from ``<exp>/results/<abbr>/*.json`` and ``predictions/<abbr>/*.json``."""
    abbr = str(model.fields["abbr"])
    res_dir = exp / "results" / abbr
    pred_dir = exp / "predictions" / abbr
    files = sorted(res_dir.glob("*.json")) if res_dir.is_dir() else []
    reports: dict[str, dict[str, Any]] = {}
    config = scrub_secrets({"eval_config": mask_model_keys(run.eval_config), "model": model.name})
    for g in groups:
        records: list[SampleRecord] = []
        framework: dict[str, float] = {}
        for f in files:
            subset = g.matches(f.stem)
            if subset is None:
                continue
            result = json.loads(f.read_text(encoding="utf-8"))
            pf = pred_dir / f.name
            preds = json.loads(pf.read_text(encoding="utf-8")) if pf.is_file() else {}
            records += sample_records(result, preds, subset)
            score = result.get("accuracy")
            if isinstance(score, int | float):
                framework[f.stem] = float(score) / 100.0
        if not records:
            raise EvalscopeError(
                f"OpenCompass wrote no results for {g.name} of {abbr} under {res_dir}",
                f"see {run.run_dir / 'logs' / 'opencompass.log'}",
            )
        backend = {
            "name": "OpenCompass",
            "version": version,
            "dataset_config": g.module.rsplit(".", 1)[-1],
            "few_shot": g.few_shot,
            "data": paths[g.name],
            "data_layout": g.layout,
            "framework_scores": framework,
            "outputs": str(exp),
            "generation": {
                k: model.fields.get(k) for k in ("temperature", "max_out_len") if k in model.fields
            },
        }
        backend["generation"] = backend["generation"] or None
        reports[g.name] = accuracy_report(
            g.name,
            model.name,
            records,
            backend=backend,
            endpoint=model.base,
            limit=run.eval_config.get("limit", run.limit),
            config=config,
        )
        write_samples(run.run_dir, model.name, g.name, records)
    return reports


# ------------------------------------------------------------------------------------- the adapter


@register
class OpenCompassBackend:
    """``--eval-backend OpenCompass``."""

    name = "OpenCompass"
    extra = "opencompass"

    def __init__(self, eval_config: dict[str, Any] | None = None) -> None:
        self.eval_config = eval_config or {}

    def available(self) -> str | None:
        python = python_for(self.eval_config)
        probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('opencompass') else 3)"
        try:
            rc = subprocess.run([python, "-c", probe], capture_output=True, timeout=120).returncode
        except (OSError, subprocess.TimeoutExpired) as exc:
            return (
                f"OpenCompass: cannot run the interpreter {python!r} ({type(exc).__name__}); set {PYTHON_ENV}"
            )
        if rc != 0:
            where = "" if python == sys.executable else f" for {python}"
            return f"OpenCompass is not installed{where}: {INSTALL_HINT}"
        return None

    def version(self, python: str) -> str | None:
        code = "import importlib.metadata as m; print(m.version('opencompass'))"
        try:
            out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() or None if out.returncode == 0 else None

    def prepare(self, run: BackendRun) -> tuple[Path, list[OCDataset], dict[str, str], list[ModelSpec]]:
        """Translate: resolve datasets and models, build local data, write the config file (no secret)."""
        names = run.eval_config.get("datasets") or []
        if isinstance(names, str):
            names = names.replace(",", " ").split()
        if not names:
            raise ConfigError(
                "the OpenCompass backend needs datasets",
                f"e.g. eval_config.datasets: [{', '.join(DATASETS)}]",
            )
        groups: list[OCDataset] = []
        for n in names:
            g = find_dataset(str(n))
            if g not in groups:
                groups.append(g)
        models = model_specs(run)
        oc_dir = run.run_dir / "opencompass"
        oc_dir.mkdir(parents=True, exist_ok=True)
        paths = local_paths(groups, run.dataset_dir, oc_dir)
        tok = write_tokenizer(oc_dir / "tokenizer")
        limit = reader_range(run.eval_config.get("limit", run.limit))
        cfg_path = oc_dir / "config.py"
        cfg_path.write_text(render_config(groups, paths, models, tok, limit), encoding="utf-8")
        task = {
            "datasets": [
                {
                    "name": g.name,
                    "config": g.module,
                    "variable": g.variable,
                    "path": paths[g.name],
                    "layout": g.layout,
                    "abbr": g.abbr,
                }
                for g in groups
            ],
            "models": [{"path": m.name, "openai_api_base": m.base, **m.fields} for m in models],
            "test_range": limit,
        }
        (oc_dir / "task.json").write_text(
            json.dumps(scrub_secrets(task), indent=2, default=str), encoding="utf-8"
        )
        return cfg_path, groups, paths, models

    def run(self, run: BackendRun) -> BackendResult:
        self.eval_config = run.eval_config
        python = python_for(run.eval_config)
        cfg_path, groups, paths, models = self.prepare(run)
        for m in models:
            _check_endpoint(m.base, m.key)
        oc_dir = cfg_path.parent
        log_path = run.run_dir / "logs" / "opencompass.log"
        key = next((m.key for m in models if m.key), None)
        env = subprocess_env(python, oc_dir, key)
        cmd = [
            python,
            "-c",
            "from opencompass.cli.main import main; main()",
            str(cfg_path),
            "-w",
            str(oc_dir / "outputs"),
        ]
        if run.debug:
            cmd.append("--debug")
        timeout = run.eval_config.get("timeout_s")
        try:
            rc = run_framework(cmd, env, oc_dir, log_path, float(timeout) if timeout else None)
        except subprocess.TimeoutExpired:
            raise EvalscopeError(
                f"OpenCompass ran longer than timeout_s={timeout}", f"see {log_path}"
            ) from None
        if rc != 0:
            raise EvalscopeError(
                f"OpenCompass exited with code {rc}: {_last_error(log_path)}", f"see {log_path}"
            )
        exp = latest_exp_dir(oc_dir / "outputs")
        if exp is None:
            raise EvalscopeError("OpenCompass wrote no output directory", f"see {log_path}")
        version = self.version(python)
        reports = {m.name: convert_outputs(exp, groups, m, run, version, paths) for m in models}
        return BackendResult(reports=reports, log_path=log_path)
