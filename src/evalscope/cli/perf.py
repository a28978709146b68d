"""``evalscope perf``: the click command, generated from :class:`evalscope.perf.config.PerfConfig`.

Every option's name, help and default come from the config model, so the CLI, config files (``--config``)
and the Python API cannot drift apart. List options accept the original EvalScope spelling
(``--parallel 1 4 16``) as well as repetition or commas. Only options the user gave are passed on, so a
config file's values are overridden by the command line and not by defaults.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import click
from click.core import ParameterSource

from evalscope.cli._gen import LIST_KINDS, apply, build_options, cli_fields
from evalscope.cli.suggest import StrictSuggestCommand
from evalscope.perf.config import PerfConfig

_MULTI_OPTS: set[str] = {
    str(e["cli"]) for _, e, _, _, _ in cli_fields(PerfConfig) if e.get("kind") in LIST_KINDS
}
#: Options whose every argument is one item (never split on spaces).
_ITEM_OPTS = frozenset({"--headers"})


class PerfCommand(StrictSuggestCommand):
    """Accepts ``--parallel 1 4 16`` (several values after one list option), as the original EvalScope did."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args[:1] == ["compare"]:  # `evalscope perf compare RUN_A RUN_B` (perf/compare.py)
            ctx.meta["perf_compare"] = args[1:]
            return super().parse_args(ctx, [])
        args = upstream_argv(args)
        out: list[str] = []
        i = 0
        while i < len(args):
            a = args[i]
            out.append(a)
            i += 1
            if a in _MULTI_OPTS:
                vals: list[str] = []
                while i < len(args) and not (
                    args[i].startswith("--") or (args[i].startswith("-") and len(args[i]) == 2)
                ):
                    vals.append(args[i])
                    i += 1
                if a in _ITEM_OPTS and len(vals) > 1:
                    # one header per argument: a value may contain spaces ("Authorization=Bearer sk-...")
                    out.append(vals[0])
                    for v in vals[1:]:
                        out += [a, v]
                else:
                    out.append(" ".join(vals) if vals else "")
        return super().parse_args(ctx, out)


#: Upstream's short spellings (field -> short option).
_SHORT: dict[str, str] = {"number": "-n"}
#: List options whose every argument is one item (a stop word may contain spaces).
_EACH_VALUE_OPTS = frozenset({"--stop", "--stop-token-ids"})
_NUMBER_RE = re.compile(r"-\d+(\.\d+)?")


def upstream_argv(args: list[str]) -> list[str]:
    """Upstream spellings -> ours before parsing: ``-n`` is ``--number``; ``--stop a b`` is ``--stop a --stop b``
    (so a value keeps its spaces); negative numbers after a list option are (bad) values, not option names."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = "--number" if args[i] == "-n" else args[i]
        i += 1
        if a not in _MULTI_OPTS:
            out.append(a)
            continue
        vals: list[str] = []
        while i < len(args) and (not args[i].startswith("-") or _NUMBER_RE.fullmatch(args[i])):
            vals.append(args[i])
            i += 1
        if a in _EACH_VALUE_OPTS:
            for v in vals or [""]:
                out += [a, v]
        elif any(_NUMBER_RE.fullmatch(v) for v in vals):
            out.append(f"{a}={' '.join(vals)}")  # click would take "-1" for an option name
        else:
            out += [a, *vals]
    return out


def _build(func: Any) -> Any:
    func = apply(func, build_options(PerfConfig, short=_SHORT))
    func = click.option(
        "--config",
        "config_file",
        type=str,
        default=None,
        help="YAML or JSON file of options (field names, e.g. parallel: [1, 4]); the command line overrides it.",
    )(func)
    return func


@click.command(
    "perf",
    cls=PerfCommand,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@_build
def perf(config_file: str | None, **kwargs: Any) -> None:
    """Stress-test an OpenAI-compatible endpoint (or, without --url, the built-in simulator).

    `evalscope perf compare RUN_A RUN_B` prints the differences of two runs, marking those beyond the noise.

    Exit codes: 0 ok, 2 bad option/config/dataset, 3 endpoint/auth, 4 aborted by --max-errors /
    --max-error-rate, 5 --strict check failed (with --sla-auto-tune: no value met the SLA), 130 interrupted.
    """
    from evalscope.cli import run_cli_command

    ctx = click.get_current_context()
    if "perf_compare" in ctx.meta:
        compare_cmd.main(ctx.meta["perf_compare"], prog_name="evalscope perf compare")
        return
    given: dict[str, Any] = {}
    for name, value in kwargs.items():
        if ctx.get_parameter_source(name) in (ParameterSource.DEFAULT, None):
            continue
        if isinstance(value, tuple):
            value = [v for v in value if v != ""]
            if not value:
                continue
            if name in ("parallel", "number", "percentiles"):
                value = " ".join(value)
        given[name] = value
    debug = bool(given.get("debug"))
    run_cli_command(_main, config_file, given, debug=debug)


def _main(config_file: str | None, given: dict[str, Any]) -> None:
    from rich.console import Console

    from evalscope.errors import AbortedError, ThresholdError
    from evalscope.perf.config import load_config_file, make_config
    from evalscope.perf.report import ConsoleReporter
    from evalscope.perf.runner import run_perf

    data: dict[str, Any] = load_config_file(config_file) if config_file else {}
    data.update(given)
    cfg = make_config(data)
    if cfg.log_every_n_query is not None:
        click.echo(
            "Note: --log-every-n-query is accepted and ignored: the live view (or --no-live's table) reports.",
            err=True,
        )
    console = Console(highlight=False)
    reporter = ConsoleReporter(console, live=cfg.live)
    summary = run_perf(cfg, reporter=reporter)
    reporter.final(summary)
    from evalscope.perf.probe import describe

    for line in describe(summary):  # a sweep's knee, the SLA answer, the repeats' intervals
        console.print(line, markup=False)
    if cfg.wandb_api_key is not None or cfg.swanlab_api_key is not None:
        from evalscope.perf.upstream import log_to_trackers

        log_to_trackers(cfg, summary)
    status = summary["status"]
    if status == "interrupted":
        click.echo(f"Interrupted: partial results in {summary['run_dir']}", err=True)
        sys.exit(130)
    if status == "aborted":
        raise AbortedError(str(summary.get("stop_reason")), f"partial results in {summary['run_dir']}")
    if cfg.strict:
        problems = []
        for s in summary["stages"]:
            if s["client"]["trustworthy"] is False:  # None: too short to judge, not a failure
                problems.append(f"stage {s['stage'] + 1}: client not trustworthy ({s['client']['reason']})")
            g = s.get("goodput")
            if g and (g["ratio"] is None or g["ratio"] < cfg.goodput_min_ratio):
                ratio = "-" if g["ratio"] is None else f"{100 * g['ratio']:.1f}%"
                problems.append(
                    f"stage {s['stage'] + 1}: goodput {ratio} < {100 * cfg.goodput_min_ratio:g}% of requests met the SLOs"
                )
        sla = summary.get("sla")
        if isinstance(sla, dict) and sla.get("mode") == "constraint" and sla.get("largest_met") is None:
            problems.append("--sla-auto-tune: no value met the SLA")
        if problems:
            raise ThresholdError("--strict: " + "; ".join(problems))


@click.command(
    "compare",
    cls=StrictSuggestCommand,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("run_a", type=click.Path(exists=True))
@click.argument("run_b", type=click.Path(exists=True))
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def compare_cmd(run_a: str, run_b: str, debug: bool) -> None:
    """Compare two perf runs (directories): per stage and metric, A, B, the difference, and whether it is
    beyond the noise (repeats' confidence intervals, else a bootstrap over the records; ? when unknown)."""
    from evalscope.cli import run_cli_command

    def _run() -> None:
        from pathlib import Path

        from evalscope.perf.compare import compare, render

        click.echo(render(compare(Path(run_a), Path(run_b)), run_a, run_b))

    run_cli_command(_run, debug=debug)
