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

_HELP = """Measure a served model's accuracy on standard benchmarks.

\b
Examples:
  evalscope eval --model qwen --api-url http://127.0.0.1:8000/v1 --datasets gsm8k arc --limit 100
  evalscope eval --datasets arc --dataset-dir ../shared/datasets --limit 10    # built-in simulator
  evalscope eval --resume outputs/20260101_120000 --api-url http://127.0.0.1:8000/v1

Exit codes: 0 ok, 1 internal error, 2 invalid option / dataset / refused resume, 3 endpoint unreachable
or rejected the key / model, 130 interrupted.
"""


def _eval_options(f: Any) -> Any:
    opts = [
        click.option("--model", help="Model name sent in requests (default: the served model)."),
        click.option("--api-url", help="OpenAI-compatible endpoint; without it the built-in simulator runs."),
        click.option("--api-key", help="API key (prefer env EVALSCOPE_API_KEY / OPENAI_API_KEY or a file)."),
        click.option(
            "--api-key-file", type=click.Path(dir_okay=False, path_type=Path), help="File with the key."
        ),
        click.option("--api", type=click.Choice(["openai", "openai-completions"]), help="Request protocol."),
        click.option("--datasets", multiple=True, help="Benchmark names: --datasets gsm8k arc mmlu."),
        click.option("--limit", type=int, help="At most N samples per benchmark."),
        click.option("--eval-batch-size", type=int, help="Requests in flight (default 32)."),
        click.option("--generation-config", help="e.g. temperature=0,max_tokens=2048 (or a JSON object)."),
        click.option(
            "--dataset-args", help='JSON, e.g. {"mmlu": {"few_shot_num": 5, "subset_list": ["anatomy"]}}'
        ),
        click.option(
            "--dataset-dir",
            type=click.Path(path_type=Path),
            help="Local data laid out like ../shared/datasets.",
        ),
        click.option(
            "--dataset-hub", type=click.Choice(["huggingface", "modelscope", "local"]), help="Data source."
        ),
        click.option("--repeats", type=int, help="Generations per sample."),
        click.option("--seed", type=int, help="Seed for shuffles and few-shot sampling."),
        click.option(
            "--work-dir", type=click.Path(path_type=Path), help="Where run directories go (./outputs)."
        ),
        click.option("--run-name", help="Name of the run directory (default: a timestamp)."),
        click.option("--use-cache", type=click.Path(path_type=Path), help="Response cache directory."),
        click.option("--resume", type=click.Path(path_type=Path), help="Resume the run in this directory."),
        click.option(
            "--force", is_flag=True, default=None, help="Resume although the configuration differs."
        ),
        click.option(
            "--allow-code-execution", is_flag=True, default=None, help="Let HumanEval/MBPP run code."
        ),
        click.option("--judge-model", help="Judge model for judge-scored benchmarks."),
        click.option("--judge-api-url", help="Judge endpoint."),
        click.option("--judge-api-key", help="Judge API key (default: the main key)."),
        click.option("--max-attempts", type=int, help="Attempts per sample on transient failures (5)."),
        click.option(
            "--retry-backoff", "retry_backoff_s", type=float, help="Base retry back-off in s (0.5)."
        ),
        click.option(
            "--sample-timeout", "sample_timeout_s", type=float, help="Deadline per sample in s (1800)."
        ),
        click.option("--read-timeout", "read_timeout_s", type=float, help="Idle read timeout in s (600)."),
        click.option("--connect-timeout", "connect_timeout_s", type=float, help="Connect timeout in s (30)."),
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
        click.option("--quiet", is_flag=True, default=None, help="No progress or table."),
        click.option("--debug", is_flag=True, default=False, help="Show tracebacks."),
        click.option("--eval-type", hidden=True, help="Accepted for compatibility; ignored."),
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
    kw.pop("eval_type", None)
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
        run_eval(cfg)
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


@click.command("eval", help=_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@_eval_options
def eval_cmd(**kw: Any) -> None:
    debug = bool(kw.get("debug"))
    run_cli_command(_main, kw, debug=debug)
