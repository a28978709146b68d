"""Upstream EvalScope ``eval`` options: declared here, translated by :func:`apply_compat_options`.

Each one is mapped onto an :class:`~evalscope.eval.config.EvalConfig` field, or accepted and ignored with a
one-line notice saying why, or refused (see :mod:`evalscope.compat_cli`, the table docs/compat.md is
generated from).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from evalscope.compat import task_key_notice
from evalscope.compat_cli import check_judge_strategy, map_eval_type
from evalscope.errors import ConfigError


def compat_options() -> list[Any]:
    """The click options (applied by cli/eval.py's option list)."""
    return [
        click.option(
            "--eval-type",
            help="Upstream's: openai_api / service (needs --api-url), mock_llm (the simulator); checkpoint is "
            "a local model (see --backend).",
        ),
        click.option(
            "--stream", "stream_on", is_flag=True, default=None, help="Stream responses (the default)."
        ),
        click.option(
            "--timeout", type=float, help="Upstream's request timeout (s): same as --sample-timeout."
        ),
        click.option("--judge-worker-num", hidden=True),
        click.option("--ignore-errors", is_flag=True, default=None, hidden=True),
        click.option("--analysis-report", is_flag=True, default=None, hidden=True),
        click.option("--mem-cache", is_flag=True, default=None, hidden=True),
    ]


def apply_compat_options(kw: dict[str, Any], err: Any = None) -> None:
    """Translate the upstream options in ``kw`` (in place) and print a notice for each ignored one."""
    stream = sys.stderr if err is None else err
    eval_type = kw.pop("eval_type", None)
    kind = map_eval_type(eval_type)
    if kind == "simulator":
        kw["simulator"] = True
    if kw.pop("stream_on", None):
        if kw.get("stream") is False:
            raise ConfigError("--stream and --no-stream both given", "pick one")
        kw["stream"] = True
    timeout = kw.pop("timeout", None)
    if timeout is not None:
        if kw.get("sample_timeout_s") is not None:
            raise ConfigError("--timeout and --sample-timeout both given; they are one setting", "pick one")
        kw["sample_timeout_s"] = timeout
    strategy = check_judge_strategy(kw.pop("judge_strategy", None))
    if strategy is not None:
        kw["judge_strategy"] = strategy
    for key in (
        "judge_worker_num",
        "ignore_errors",
        "analysis_report",
        "mem_cache",
    ):
        value = kw.pop(key, None)
        if value is not None and value is not False:
            print(task_key_notice(key).replace(f"{key!r}", "--" + key.replace("_", "-")), file=stream)
