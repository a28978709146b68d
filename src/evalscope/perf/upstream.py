"""Upstream EvalScope ``perf`` request options, folded into what the request builder already sends.

``--stop``, ``--stop-token-ids``, the penalties, ``--n-choices``, ``--logprobs`` and ``--query-template``'s
extra fields become body fields through ``extra_args`` (merged into every request body, so the hot path is
unchanged); ``--prompt`` selects the one-prompt dataset. A value given twice with different values (an option
and the same field in ``--extra-args``) is an error rather than a silent override.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

#: The run's ``PerfConfig``. perf.config calls into this module from its validator, so this module cannot
#: import the class back, not even for types (tests/unit/core/test_import_graph.py forbids any cycle).
PerfConfig = Any

#: Tracker option -> (package, install hint).
TRACKERS: dict[str, tuple[str, str]] = {
    "wandb_api_key": ("wandb", "pip install wandb"),
    "swanlab_api_key": ("swanlab", "pip install swanlab"),
}

_TEMPLATE_OWN = ("model", "messages", "prompt", "stream")


def _read_at(value: str, option: str) -> str:
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{option} {value!r}: cannot read the file ({exc.strerror})") from None


def _template_fields(text: str) -> dict[str, Any]:
    """The body fields of an upstream query template other than the ones the request builder owns."""
    try:
        tpl = json.loads(_read_at(text, "--query-template"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"--query-template is not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(tpl, dict):
        raise ValueError(
            "--query-template must be a JSON object (a request body with %m and %p placeholders)"
        )
    for key in ("messages", "prompt"):
        val = tpl.get(key)
        if val is None:
            continue
        texts = [m.get("content") for m in val if isinstance(m, dict)] if isinstance(val, list) else [val]
        if "%p" not in texts:
            raise ValueError(
                f"--query-template: {key} must carry the prompt as %p alone (a fixed wrapper around it is not "
                "supported; put it in the dataset)"
            )
    return {k: v for k, v in tpl.items() if k not in _TEMPLATE_OWN}


def body_fields(cfg: PerfConfig) -> dict[str, Any]:
    """Body fields set by the upstream options (nothing for options left at their defaults)."""
    out: dict[str, Any] = {}
    if cfg.stop:
        out["stop"] = list(cfg.stop)
    if cfg.stop_token_ids:
        out["stop_token_ids"] = list(cfg.stop_token_ids)
    for name in ("frequency_penalty", "presence_penalty", "repetition_penalty", "top_k"):
        value = getattr(cfg, name)
        if value is not None:
            out[name] = value
    if cfg.n_choices is not None:
        out["n"] = cfg.n_choices
    if cfg.logprobs:
        out["logprobs"] = True
    return out


def apply_upstream_options(cfg: PerfConfig) -> PerfConfig:
    """Fold the upstream options into ``extra_args`` / ``dataset``; check the tracker packages."""
    merged: dict[str, Any] = {}
    if cfg.query_template:
        merged.update(_template_fields(cfg.query_template))
    for key, value in cfg.extra_args.items():
        if key in merged and merged[key] != value:
            raise ValueError(f"--extra-args {key}={value!r} contradicts --query-template's {merged[key]!r}")
        merged[key] = value
    for key, value in body_fields(cfg).items():
        if key in cfg.extra_args and cfg.extra_args[key] != value:
            raise ValueError(f"--extra-args {key}={cfg.extra_args[key]!r} contradicts the option's {value!r}")
        merged[key] = value
    if merged != cfg.extra_args:
        cfg.extra_args = merged
    if cfg.prompt is not None:
        if "dataset" in cfg.model_fields_set and cfg.dataset != "prompt":
            raise ValueError("give --prompt or --dataset, not both")
        cfg.prompt = _read_at(cfg.prompt, "--prompt")
        if not cfg.prompt.strip():
            raise ValueError("--prompt is empty")
        cfg.dataset = "prompt"
    elif cfg.dataset == "prompt":
        raise ValueError("--dataset prompt needs --prompt TEXT")
    path = (cfg.url or "").split("?")[0].rstrip("/")
    if cfg.api == "openai" and path.endswith("/completions") and not path.endswith("/chat/completions"):
        cfg.api = "openai-completions"  # upstream picks the body by the URL: .../v1/completions gets prompts
    for field, (package, hint) in TRACKERS.items():
        key = getattr(cfg, field)
        if key is None:
            continue
        if importlib.util.find_spec(package) is None:
            raise ValueError(f"--{field.replace('_', '-')} needs the {package} package ({hint})")
        from evalscope.engine.redact import register_secret

        register_secret(key.get_secret_value())
    if cfg.url is None and cfg.model and cfg.model != "sim-model" and cfg.backend == "api":
        # never label a simulator run with a model that did not answer (upstream's --url had a default)
        raise ValueError(
            f"--model {cfg.model} needs --url: without it the built-in simulator answers, and it serves "
            "'sim-model' only (pass --url http://HOST:PORT/v1 of the server that serves the model)"
        )
    return cfg


def log_to_trackers(cfg: PerfConfig, summary: dict[str, Any]) -> None:
    """Send each stage's scalar metrics to wandb / swanlab when their key was given."""
    rows = [_flatten(s) for s in summary.get("stages", [])]
    name = cfg.name or "evalscope-perf"
    if cfg.wandb_api_key is not None:
        import wandb  # type: ignore[import-not-found]

        wandb.login(key=cfg.wandb_api_key.get_secret_value())
        run = wandb.init(project="evalscope-perf", name=name, config=cfg.public_dict())
        for i, row in enumerate(rows):
            run.log(row, step=i)
        run.finish()
    if cfg.swanlab_api_key is not None:
        import swanlab  # type: ignore[import-not-found]

        swanlab.login(api_key=cfg.swanlab_api_key.get_secret_value())
        swanlab.init(project="evalscope-perf", experiment_name=name, config=cfg.public_dict())
        for i, row in enumerate(rows):
            swanlab.log(row, step=i)
        swanlab.finish()


def _flatten(obj: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}/"))
    elif isinstance(obj, bool):
        pass
    elif isinstance(obj, int | float):
        out[prefix.rstrip("/")] = float(obj)
    return out
