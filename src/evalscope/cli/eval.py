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
from evalscope.cli._gen import apply, build_options
from evalscope.cli.eval_compat import apply_compat_options, compat_options
from evalscope.cli.suggest import StrictSuggestCommand

_HELP = """Measure a served model's accuracy on standard benchmarks.

\b
Examples:
  evalscope eval --api-url http://127.0.0.1:8000/v1 --datasets gsm8k arc --dataset-dir ../shared/datasets
  evalscope eval --datasets arc --dataset-dir ../shared/datasets --limit 10    # built-in simulator
  evalscope eval --model <model_dir> --datasets arc --dataset-dir ../shared/datasets   # local weights
  evalscope eval --resume outputs/20260101_120000 --api-url http://127.0.0.1:8000/v1

Exit codes: 0 ok, 1 internal error, 2 invalid option / dataset / refused resume, 3 endpoint unreachable
or rejected the key / model, 4 a benchmark's errored samples exceeded --max-error-rate (reports are
written), 130 interrupted.
"""


def _eval_options(f: Any) -> Any:
    """Options generated from EvalConfig's fields, then the upstream spellings, then bare dataset names."""
    from evalscope.eval.config import EvalConfig

    opts = [
        *build_options(EvalConfig, typed=True),
        *compat_options(),
        click.argument("more_datasets", nargs=-1),
    ]
    return apply(f, opts)


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
