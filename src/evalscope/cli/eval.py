"""``evalscope eval``: accuracy on standard benchmarks against an endpoint (or the built-in simulator).

A thin layer: options -> :class:`~evalscope.eval.config.EvalConfig` (validation happens there) ->
:func:`~evalscope.eval.runner.run_eval`. Every user error is one line plus its exit code (2 config /
dataset, 3 endpoint); ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from evalscope.cli import run_cli_command
from evalscope.cli.eval_compat import apply_compat_options, compat_options
from evalscope.cli.suggest import StrictSuggestCommand

_HELP = """Measure a served model's accuracy on standard benchmarks.

\b
Examples:
  evalscope eval --api-url http://127.0.0.1:8000/v1 --datasets gsm8k arc --dataset-dir ../shared/datasets
  evalscope eval --datasets arc --dataset-dir ../shared/datasets --limit 10    # built-in simulator
  evalscope eval --resume outputs/20260101_120000 --api-url http://127.0.0.1:8000/v1
  evalscope eval --eval-backend OpenCompass --datasets gsm8k ARC_c --dataset-dir ../shared/datasets  # backends.md

Exit codes: 0 ok, 1 internal error, 2 invalid option / dataset / refused resume, 3 endpoint unreachable
or rejected the key / model, 4 a benchmark's errored samples exceeded --max-error-rate (reports are
written), 130 interrupted.
"""


def _h(name: str, extra: str = "") -> str:
    """Help text of an option = the EvalConfig field's description and default (one source of truth)."""
    from evalscope.eval.config import EvalConfig

    field = EvalConfig.model_fields[name]
    text = field.description or ""
    if field.is_required() or field.default_factory is not None:
        return text + extra
    default = field.default
    if default not in (None, False, ""):
        text += f" [default: {default}]"
    return text + extra


def _eval_options(f: Any) -> Any:
    opts = [
        click.option("--model", help=_h("model")),
        click.option("--api-url", help=_h("api_url")),
        click.option("--api-key", help=_h("api_key", " Prefer the env variables or --api-key-file.")),
        click.option(
            "--api-key-file", type=click.Path(dir_okay=False, path_type=Path), help=_h("api_key_file")
        ),
        click.option("--api", type=click.Choice(["openai", "openai-completions"]), help=_h("api")),
        click.option(
            "--datasets", multiple=True, help=_h("datasets", " Several names may follow one --datasets.")
        ),
        click.option("--limit", type=int, help=_h("limit")),
        click.option("--eval-batch-size", type=int, help=_h("eval_batch_size")),
        click.option("--generation-config", help=_h("generation_config", " Or a JSON object.")),
        click.option("--dataset-args", help=_h("dataset_args")),
        click.option("--dataset-dir", type=click.Path(path_type=Path), help=_h("dataset_dir")),
        click.option(
            "--dataset-hub", type=click.Choice(["huggingface", "modelscope", "local"]), help=_h("dataset_hub")
        ),
        click.option("--repeats", type=int, help=_h("repeats")),
        click.option("--seed", type=int, help=_h("seed")),
        click.option("--work-dir", type=click.Path(path_type=Path), help=_h("work_dir")),
        click.option("--run-name", help=_h("run_name")),
        click.option("--use-cache", type=click.Path(path_type=Path), help=_h("use_cache")),
        click.option("--resume", type=click.Path(path_type=Path), help=_h("resume")),
        click.option("--force", is_flag=True, default=None, help=_h("force")),
        click.option("--allow-code-execution", is_flag=True, default=None, help=_h("allow_code_execution")),
        click.option("--judge-model", help=_h("judge_model")),
        click.option("--judge-api-url", help=_h("judge_api_url")),
        click.option("--judge-api-key", help=_h("judge_api_key")),
        click.option("--max-attempts", type=int, help=_h("max_attempts")),
        click.option("--retry-backoff", "retry_backoff_s", type=float, help=_h("retry_backoff_s")),
        click.option("--sample-timeout", "sample_timeout_s", type=float, help=_h("sample_timeout_s")),
        click.option("--read-timeout", "read_timeout_s", type=float, help=_h("read_timeout_s")),
        click.option("--connect-timeout", "connect_timeout_s", type=float, help=_h("connect_timeout_s")),
        click.option("--drain-timeout", "drain_timeout_s", type=float, help=_h("drain_timeout_s")),
        click.option("--max-error-rate", type=float, help=_h("max_error_rate")),
        click.option(
            "--no-stream", "stream", flag_value=False, default=None, help="Ask for whole responses."
        ),
        click.option(
            "--no-test-connection",
            "preflight",
            flag_value=False,
            default=None,
            help="Skip the endpoint check.",
        ),
        click.option("--quiet", is_flag=True, default=None, help=_h("quiet")),
        click.option(
            "--no-html", "html", flag_value=False, default=None, help=_h("html", " --no-html: don't.")
        ),
        click.option(
            "--eval-backend",
            type=click.Choice(["Native", "OpenCompass", "VLMEvalKit", "ThirdParty"], case_sensitive=False),
            help=_h("eval_backend"),
        ),
        click.option("--eval-config", help=_h("eval_config")),
        click.option("--debug", is_flag=True, default=False, help=_h("debug")),
        *compat_options(),
        click.argument("more_datasets", nargs=-1),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _resume_base(resume: Path) -> dict[str, Any]:
    """The saved (redacted) config of a run to resume, without secrets."""
    import orjson

    from evalscope.errors import ConfigError

    mpath = resume / "manifest.json"
    if not mpath.is_file():
        raise ConfigError(f"--resume {str(resume)!r}: not a run directory (no manifest.json)")
    try:
        cfg = dict(orjson.loads(mpath.read_bytes()).get("config") or {})
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--resume {str(resume)!r}: manifest.json is unreadable ({exc})") from None
    for k in ("api_key", "judge_api_key", "resume", "use_cache", "force", "debug", "quiet"):
        cfg.pop(k, None)
    return cfg


def options_to_config(kw: dict[str, Any]) -> Any:
    """Build an EvalConfig from parsed options (only options the user gave override the defaults)."""
    from evalscope.eval.config import build_config

    data: dict[str, Any] = {}
    more = list(kw.pop("more_datasets", ()) or ())
    apply_compat_options(kw)
    datasets = list(kw.pop("datasets", ()) or ()) + more
    if datasets:
        data["datasets"] = datasets
    for k, v in kw.items():
        if v is None:
            continue
        data[k] = v
    if data.get("resume") is not None and "datasets" not in data:
        base = _resume_base(Path(data["resume"]))
        base.update(data)
        data = base
    return build_config(data)


def _main(kw: dict[str, Any]) -> None:
    from evalscope.eval.runner import run_eval

    cfg = options_to_config(kw)
    try:
        result = run_eval(cfg)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        from evalscope.errors import EvalscopeError

        if isinstance(exc, EvalscopeError) or kw.get("debug"):
            raise
        from evalscope.engine.redact import scrub

        click.echo(
            f"Error: internal error: {type(exc).__name__}: {scrub(str(exc))[:300]} (rerun with --debug)",
            err=True,
        )
        sys.exit(1)
    if result.over_error_rate:
        from evalscope.errors import AbortedError

        raise AbortedError(
            f"errored samples exceeded --max-error-rate {cfg.max_error_rate:g}: "
            + ", ".join(result.over_error_rate),
            f"reports are written; retry the errored samples with --resume {result.run_dir}",
        )


@click.command(
    "eval", cls=StrictSuggestCommand, help=_HELP, context_settings={"help_option_names": ["-h", "--help"]}
)
@_eval_options
def eval_cmd(**kw: Any) -> None:
    debug = bool(kw.get("debug"))
    run_cli_command(_main, kw, debug=debug)
