"""EvalConfig: the single source of defaults and validation for ``evalscope eval`` / ``run_task``.

Every option is validated here before any network I/O (V1): a bad value becomes one :class:`ConfigError`
line naming the option, the value and what is allowed (exit code 2). The CLI, ``python -m evalscope.run`` and
``run_task(dict | path | EvalConfig)`` all build an ``EvalConfig``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from evalscope import options as opt
from evalscope.errors import ConfigError

DatasetHub = Literal["huggingface", "modelscope", "local"]
EvalBackendName = Literal["Native", "OpenCompass", "VLMEvalKit", "ThirdParty"]

#: Default dataset directory when none is given (the hub cache layout is the same as --dataset-dir's).
DEFAULT_DATASET_CACHE = (
    Path(os.environ.get("EVALSCOPE_CACHE", Path.home() / ".cache" / "evalscope")) / "datasets"
)

#: Keys accepted by --generation-config (anything else is passed to the body verbatim only via extra_body).
_GEN_NUMBERS = {
    "temperature",
    "top_p",
    "top_k",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
}
_GEN_INTS = {"max_tokens", "min_tokens", "seed", "n"}


def _opt(name: str, kind: str = "value", **more: Any) -> dict[str, Any]:
    """Field metadata for the generated ``evalscope eval`` options (see :mod:`evalscope.cli._gen`)."""
    return {"cli": name, "kind": kind, **more}


def _coerce_scalar(text: str) -> Any:
    """``"0"`` -> 0, ``"0.7"`` -> 0.7, ``"true"`` -> True, JSON lists/objects, else the string."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        pass
    if t[:1] in '[{"':
        try:
            return json.loads(t)
        except json.JSONDecodeError:
            pass
    return t


def parse_generation_config(value: Any) -> dict[str, Any]:
    """Accept a dict, a JSON object string, or ``key=value,key=value``."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise ValueError("must be a mapping or 'key=value,key=value'")
    s = value.strip()
    if s.startswith("{"):
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise ValueError("must be a JSON object")
        return obj
    out: dict[str, Any] = {}
    for part in _split_top_level(s):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"{part.strip()!r} is not key=value (e.g. temperature=0,max_tokens=2048)")
        k, _, v = part.partition("=")
        out[k.strip()] = _coerce_scalar(v)
    return out


def _split_top_level(s: str) -> list[str]:
    """Split on commas outside brackets/quotes (so ``stop=["a","b"]`` survives)."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    cur: list[str] = []
    for ch in s:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


class EvalConfig(BaseModel):
    """All settings of one evaluation run. Field descriptions double as CLI help."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    # endpoint
    model: str | None = Field(
        None,
        description="Model name sent in requests (default: the served model).",
        json_schema_extra=_opt("--model"),
    )
    api_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint; without it the built-in simulator is started.",
        json_schema_extra=_opt("--api-url"),
    )
    api_key: opt.ApiKey = None
    api_key_file: opt.ApiKeyFile = None
    api: Literal["openai", "openai-completions"] = Field(
        "openai", description="Request protocol.", json_schema_extra=_opt("--api")
    )
    stream: bool = Field(
        True,
        description="Stream responses (TTFT is measured only when streaming).",
        json_schema_extra=_opt(
            "--no-stream", "negflag", text="Ask for whole responses (TTFT is then not measured)."
        ),
    )
    preflight: bool = Field(
        True,
        description="Check the endpoint (reachability, key, model) before the run.",
        json_schema_extra=_opt("--no-test-connection", "negflag", text="Skip the endpoint check."),
    )
    simulator: bool = Field(
        False,
        description="Score the built-in simulator (also --api-url sim); the default without --model.",
        json_schema_extra=_opt("--simulator", "flag"),
    )
    dry_run: bool = Field(
        False,
        description="Validate the options and load the data; send no request.",
        json_schema_extra=_opt("--dry-run", "flag"),
    )

    # local models (issue 13): --model as a directory or hub id, run by a backend (evalscope.localmodel)
    backend: str | None = Field(
        None,
        description="How the model is run: api (--api-url or the simulator), transformers (in-process), vllm, "
        "llama.cpp, sglang, swift (a managed server). Default: api with --api-url, else for a model directory "
        "or hub id vllm when installed, else transformers.",
        json_schema_extra={"cli": "--backend"},
    )
    model_hub: Literal["modelscope", "huggingface"] = Field(
        "modelscope",
        description="Hub a --model hub id (org/name) is downloaded from, into the cache (extra 'hub').",
        json_schema_extra={"cli": "--model-hub"},
    )
    model_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Local model settings: precision (float16, bfloat16, float32, auto), device_map, revision, "
        "trust_remote_code, attn_implementation; key=value,key=value or JSON.",
        json_schema_extra={"cli": "--model-args"},
    )
    chat_template: Path | None = Field(
        None,
        description="Jinja chat template file for a local model (default: the tokenizer's own).",
        json_schema_extra={"cli": "--chat-template"},
    )
    template_type: str | None = Field(
        None,
        description="The seed's template name (qwen, chatml, llama3 ...): used for a local model whose "
        "tokenizer has no chat template; the tokenizer's own template supersedes it.",
        json_schema_extra={"cli": "--template-type"},
    )
    server_args: opt.ServerArgs = None
    server_bin: opt.ServerBin = None
    server_timeout: opt.ServerTimeout = 600.0

    # what to evaluate
    datasets: list[str] = Field(
        default_factory=list,
        description="Benchmark names (e.g. gsm8k arc mmlu); required unless --eval-config names them.",
        json_schema_extra=_opt("--datasets", "list", help=" Several names may follow one --datasets."),
    )
    dataset_args: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Per-benchmark settings, e.g. {"mmlu": {"few_shot_num": 5}}.',
        json_schema_extra=_opt("--dataset-args"),
    )
    dataset_dir: Path | None = Field(
        None,
        description="Local copies laid out like ../shared/datasets.",
        json_schema_extra=_opt("--dataset-dir"),
    )
    dataset_hub: DatasetHub = Field(
        "huggingface",
        description="Without --dataset-dir: download the original files from this hub into the cache "
        "(extra 'hub'; offline, the cache only); local: no download.",
        json_schema_extra=_opt("--dataset-hub"),
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="Evaluate at most N samples per benchmark (round-robin across its subsets).",
        json_schema_extra=_opt("--limit"),
    )
    repeats: int = Field(
        1,
        ge=1,
        le=1000,
        description="Generations per sample (pass@k, averaging).",
        json_schema_extra=_opt("--repeats"),
    )
    seed: int = Field(
        42,
        description="Seed for shuffles and few-shot sampling (not sent unless configured).",
        json_schema_extra=_opt("--seed"),
    )
    generation_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Request parameters, e.g. temperature=0,max_tokens=2048.",
        json_schema_extra=_opt("--generation-config", help=" Or a JSON object."),
    )
    allow_code_execution: bool = Field(
        False,
        description="Allow HumanEval/MBPP to run generated code.",
        json_schema_extra=_opt("--allow-code-execution", "flag"),
    )

    # running
    eval_batch_size: int = Field(
        32, ge=1, le=100_000, description="Requests in flight.", json_schema_extra=_opt("--eval-batch-size")
    )
    max_attempts: int = Field(
        5,
        ge=1,
        le=100,
        description="Attempts per sample for transient failures.",
        json_schema_extra=_opt("--max-attempts"),
    )
    retry_backoff_s: float = Field(
        0.5,
        ge=0,
        description="Base of the exponential retry back-off (s).",
        json_schema_extra=_opt("--retry-backoff"),
    )
    retry_max_backoff_s: float = Field(30.0, ge=0, description="Cap of one back-off sleep (s).")
    retry_after_cap_s: float = Field(60.0, ge=0, description="Cap on a server's Retry-After (s).")
    sample_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="Deadline per sample across all attempts (s).",
        json_schema_extra=_opt("--sample-timeout"),
    )
    connect_timeout_s: float = Field(
        30.0, gt=0, description="TCP connect timeout (s).", json_schema_extra=_opt("--connect-timeout")
    )
    read_timeout_s: float = Field(
        600.0,
        gt=0,
        description="Idle read timeout between bytes (s).",
        json_schema_extra=_opt("--read-timeout"),
    )
    transport: opt.Transport = "builtin"
    drain_timeout_s: float = Field(
        30.0,
        ge=0,
        description="After Ctrl-C / SIGTERM, wait this long for requests in flight (s).",
        json_schema_extra=_opt("--drain-timeout"),
    )
    max_error_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Exit 4 (reports still written) when a benchmark's errored share of samples exceeds this.",
        json_schema_extra=_opt("--max-error-rate"),
    )

    # outputs
    work_dir: Path = Field(
        Path("./outputs"),
        description="Run directories are created below this.",
        json_schema_extra=_opt("--work-dir"),
    )
    run_name: str | None = Field(
        None, description="Run directory name (default: a timestamp).", json_schema_extra=_opt("--run-name")
    )
    use_cache: Path | None = Field(
        None,
        description="Response cache directory (reused across runs).",
        json_schema_extra=_opt("--use-cache"),
    )
    resume: Path | None = Field(
        None, description="Resume the run in this directory.", json_schema_extra=_opt("--resume")
    )
    force: bool = Field(
        False,
        description="Resume even when the configuration fingerprint differs.",
        json_schema_extra=_opt("--force", "flag"),
    )

    # judge: refused unless a selected benchmark would use it (uses_judge, or judge_capable + judge_strategy)
    judge_model: str | None = Field(
        None,
        description="Judge model for judge-scored benchmarks (truthful_qa_gen) and --judge-strategy "
        "(general_qa); refused when no selected benchmark would use it.",
        json_schema_extra=_opt("--judge-model"),
    )
    judge_strategy: Literal["auto", "llm", "rule", "llm_recall"] | None = Field(
        None,
        description="Who scores benchmarks that can use a judge (general_qa): rule (the metric), llm (the "
        "judge), auto (the judge when --judge-model is given, else rule), llm_recall (rule, then the judge "
        "for answers the rule scored 0). Judge-scored benchmarks (truthful_qa_gen) always use the judge.",
        json_schema_extra={"cli": "--judge-strategy"},
    )
    judge_api_url: str | None = Field(
        None, description="Judge endpoint (default: --api-url).", json_schema_extra=_opt("--judge-api-url")
    )
    judge_api_key: SecretStr | None = Field(
        None, description="Judge API key (default: the main key).", json_schema_extra=_opt("--judge-api-key")
    )

    # another evaluation framework behind the same entry point (docs/backends.md)
    eval_backend: EvalBackendName = Field(
        "Native",
        description="Evaluation framework: Native (ours), OpenCompass, VLMEvalKit or ThirdParty (its "
        "extra must be installed).",
        json_schema_extra={"cli": "--eval-backend", "nocase": True},
    )
    eval_config: dict[str, Any] | None = Field(
        None,
        description="The backend's settings in the original EvalScope's shape (datasets, models, work_dir, "
        "limit...): a mapping, JSON text, or a YAML/JSON file.",
        json_schema_extra={"cli": "--eval-config"},
    )

    debug: opt.Debug = False
    quiet: bool = Field(
        False, description="No console table / progress.", json_schema_extra=_opt("--quiet", "flag")
    )
    html: bool = Field(
        True,
        description="Write report.html (self-contained, offline) into the run directory.",
        json_schema_extra=_opt("--no-html", "negflag", help=" --no-html: don't."),
    )

    @model_validator(mode="before")
    @classmethod
    def _sim_alias(cls, data: Any) -> Any:
        """``--api-url sim`` is the explicit way to ask for the built-in simulator."""
        if isinstance(data, dict) and str(data.get("api_url") or "").strip().lower() in ("sim", "simulator"):
            data = {**data, "api_url": None, "simulator": True}
        return data

    @field_validator("generation_config", mode="before")
    @classmethod
    def _gen(cls, v: Any) -> dict[str, Any]:
        from evalscope.compat import translate_generation_config

        out = translate_generation_config(parse_generation_config(v))
        for k, val in out.items():
            if k in _GEN_INTS and val is not None and (not isinstance(val, int) or isinstance(val, bool)):
                raise ValueError(f"{k}={val!r} must be an integer")
            if k in _GEN_NUMBERS and val is not None and not isinstance(val, int | float):
                raise ValueError(f"{k}={val!r} must be a number")
        if "max_tokens" in out and out["max_tokens"] is not None and out["max_tokens"] < 1:
            raise ValueError("max_tokens must be >= 1")
        if "temperature" in out and out["temperature"] is not None and out["temperature"] < 0:
            raise ValueError("temperature must be >= 0")
        return out

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, v: Any) -> Any:
        from evalscope.localmodel import check_backend

        return check_backend(v) if isinstance(v, str) else v

    @field_validator("model_args", mode="before")
    @classmethod
    def _model_args(cls, v: Any) -> dict[str, Any]:
        from evalscope.localmodel import check_model_args

        return check_model_args(parse_generation_config(v))

    @field_validator("chat_template")
    @classmethod
    def _chat_template(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError("not a file (a Jinja chat template)")
        return v

    @field_validator("eval_backend", mode="before")
    @classmethod
    def _eval_backend(cls, v: Any) -> Any:
        """Case-insensitive, as the original's ``eval_backend`` values are written both ways."""
        if isinstance(v, str):
            for name in ("Native", "OpenCompass", "VLMEvalKit", "ThirdParty"):
                if v.strip().lower() == name.lower():
                    return name
        return v

    @field_validator("eval_config", mode="before")
    @classmethod
    def _eval_config(cls, v: Any) -> Any:
        return parse_eval_config(v)

    @field_validator("dataset_args", mode="before")
    @classmethod
    def _dargs(cls, v: Any) -> Any:
        if v is None or v == "":
            return {}
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError as exc:
                raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(v, dict) or not all(isinstance(x, dict) for x in v.values()):
            raise ValueError('must map benchmark names to objects, e.g. {"mmlu": {"few_shot_num": 5}}')
        return v

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list | tuple):
            out: list[str] = []
            for item in v:
                for name in str(item).replace(",", " ").split():
                    if name not in out:
                        out.append(name)
            return out
        return v

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        if not v:
            return None
        scheme = v.split("://", 1)[0] if "://" in v else "http"
        if scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL, e.g. http://127.0.0.1:8000/v1")
        return v

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "/" in v or "\\" in v or v in (".", "..")):
            raise ValueError("must be a plain directory name (no path separators)")
        return v

    @model_validator(mode="after")
    def _cross(self) -> EvalConfig:
        if self.eval_backend == "Native":
            if not self.datasets:
                raise ValueError("--datasets is required")
            if self.eval_config:
                raise ValueError("--eval-config needs --eval-backend OpenCompass, VLMEvalKit or ThirdParty")
        elif not self.datasets and not (self.eval_config or {}).get("datasets"):
            raise ValueError(
                f"--datasets is required (or 'datasets' in --eval-config) for {self.eval_backend}"
            )
        if self.use_cache is not None and self.resume is not None:
            raise ValueError("--use-cache and --resume are mutually exclusive")
        if (self.judge_api_url or self.judge_api_key) and not self.judge_model:
            raise ValueError("--judge-api-url / --judge-api-key need --judge-model")
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("give either --api-key or --api-key-file, not both")
        for name in self.dataset_args:
            if name not in self.datasets:
                raise ValueError(f"--dataset-args names {name!r}, which is not in --datasets")
        if self.simulator and self.api_url is not None:
            raise ValueError("--simulator and --api-url are mutually exclusive")
        from evalscope.servers import MANAGED_BACKENDS

        if self.backend in MANAGED_BACKENDS:
            _check_managed(self)
            return self
        from evalscope.compat import check_eval_target

        check_eval_target(self.model, self.api_url, self.simulator, self.backend)
        return self

    # ---------------------------------------------------------------------------------------- helpers

    def resolved_api_key(self) -> str | None:
        """The key from --api-key, --api-key-file, or the environment (engine/credentials.py has the rule)."""
        from evalscope.engine.credentials import resolve_api_key

        return resolve_api_key(
            None if self.api_key is None else self.api_key.get_secret_value(), self.api_key_file
        )

    def resolved_backend(self) -> str:
        """``api`` or the local backend that runs --model (evalscope.localmodel.choose_backend has the rule)."""
        from evalscope.localmodel import choose_backend

        return choose_backend(self.backend, self.model, self.api_url, self.simulator)

    def resolved_judge_key(self) -> str | None:
        if self.judge_api_key is not None:
            return self.judge_api_key.get_secret_value() or None
        return self.resolved_api_key()

    def dataset_root(self) -> Path | None:
        """The directory benchmarks read: --dataset-dir, else the hub cache (None with hub=local and no dir)."""
        if self.dataset_dir is not None:
            return self.dataset_dir
        if self.dataset_hub == "local":
            return None
        cache = os.environ.get("EVALSCOPE_CACHE")
        return Path(cache) / "datasets" if cache else DEFAULT_DATASET_CACHE

    def benchmark_args(self, name: str) -> dict[str, Any]:
        args = dict(self.dataset_args.get(name, {}))
        args.setdefault("allow_code_execution", self.allow_code_execution)
        args.setdefault("seed", self.seed)
        return args

    def redacted_dict(self) -> dict[str, Any]:
        """The config as saved in manifests and reports: secrets masked, paths as strings."""
        d = self.model_dump(mode="json")
        for key in ("api_key", "judge_api_key"):
            if d.get(key) is not None:
                d[key] = "***"
        from evalscope.engine.redact import redact_url

        for key in ("api_url", "judge_api_url"):
            d[key] = redact_url(d.get(key))
        if isinstance(d.get("eval_config"), dict):
            d["eval_config"] = mask_model_keys(d["eval_config"])
        result: dict[str, Any] = scrub_secrets(d)
        return result


def _check_managed(cfg: EvalConfig) -> None:
    """--backend vllm etc.: the managed server is the endpoint, so no --api-url / --simulator; --model needed."""
    if cfg.api_url is not None or cfg.simulator:
        what = "--api-url" if cfg.api_url is not None else "--simulator"
        raise ValueError(
            f"{what} and --backend {cfg.backend} are mutually exclusive: the managed server is the endpoint "
            f"(drop {what}, or drop --backend to evaluate a running server)"
        )
    if not cfg.model:
        raise ValueError(f"--backend {cfg.backend} needs --model (a model directory, hub id or GGUF file)")
    from evalscope.servers.managed import split_server_args

    split_server_args(cfg.server_args)


#: Keys whose values are credentials wherever they appear (exact names: "max_tokens" is not a secret).
def scrub_secrets(obj: Any) -> Any:
    """A copy of ``obj`` with credential keys masked and every registered secret scrubbed (see engine.redact)."""
    from evalscope.engine.redact import redact

    return redact(obj)


def parse_eval_config(value: Any) -> dict[str, Any] | None:
    """``eval_config`` from a mapping, JSON object text, or a YAML / JSON file path."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, Path) or (isinstance(value, str) and not value.strip().startswith("{")):
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"{str(path)!r} is neither a JSON object nor a file")
        try:
            obj = opt.read_config_file(path, "--eval-config", mapping=False)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
        if isinstance(obj, dict) and isinstance(obj.get("eval_config"), dict):
            obj = obj["eval_config"]  # a whole task file: take its eval_config
    elif isinstance(value, str):
        try:
            obj = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    else:
        raise ValueError("must be a mapping, JSON object text or a YAML/JSON file path")
    if not isinstance(obj, dict):
        raise ValueError("must be a mapping (datasets, models, ...)")
    return obj


def mask_model_keys(eval_config: dict[str, Any]) -> dict[str, Any]:
    """A copy with each ``models[].key`` (the original's API-key field) masked; 'EMPTY' is not a secret."""
    out = dict(eval_config)
    models = out.get("models")
    if isinstance(models, list):
        masked: list[Any] = []
        for m in models:
            if isinstance(m, dict) and m.get("key") not in (None, "", "EMPTY"):
                m = {**m, "key": "***"}
            masked.append(m)
        out["models"] = masked
    return out


def build_config(data: dict[str, Any]) -> EvalConfig:
    """Validate a mapping into an :class:`EvalConfig`, turning pydantic errors into one ConfigError line."""
    return opt.validate_config(
        EvalConfig, data, "invalid eval configuration: ", "see `evalscope eval --help`"
    )


#: Seed-compatible aliases accepted in run_task dicts / YAML (old evalscope names -> EvalConfig fields).
ALIASES: dict[str, str] = {
    "api_base": "api_url",
    "url": "api_url",
    "eval_type": "",
    "dataset_hub": "dataset_hub",
    "mem_cache": "",
    "use_cache": "use_cache",
    "dataset_dir": "dataset_dir",
    "generation_cfg": "generation_config",
    "datasets_args": "dataset_args",
    "batch_size": "eval_batch_size",
    "n": "repeats",
}


def normalize_task_dict(d: dict[str, Any]) -> dict[str, Any]:
    """Map seed-era keys onto EvalConfig fields; drop keys that no longer mean anything (``eval_type``)."""
    from evalscope.compat import normalize_seed_task

    d = normalize_seed_task(d)  # also checks judge_strategy (one rule, compat_cli.check_judge_strategy)
    out: dict[str, Any] = {}
    for k, v in d.items():
        target = ALIASES.get(k, k)
        if target == "":
            continue
        if k == "batch_size" and "eval_batch_size" in d:
            continue
        out[target] = v
    return out  # generation_config names are translated by EvalConfig itself (evalscope.compat)


def load_task_config(task_cfg: Any) -> EvalConfig:
    """A config from an EvalConfig, a dict, or a YAML / JSON file path."""
    if isinstance(task_cfg, EvalConfig):
        return task_cfg
    if isinstance(task_cfg, str | Path):
        data = opt.read_config_file(task_cfg, "task config")
        return build_config(normalize_task_dict(data))
    if isinstance(task_cfg, dict):
        return build_config(normalize_task_dict(task_cfg))
    raise ConfigError(
        f"run_task() got a {type(task_cfg).__name__}", "pass a dict, a YAML/JSON path or an EvalConfig"
    )
