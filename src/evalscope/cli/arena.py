"""``evalscope arena``: the click command, generated from :class:`evalscope.arena.config.ArenaConfig`.

Each option's flag, kind and help come from the config model's fields (``json_schema_extra``), as
``evalscope perf``'s do from PerfConfig. List options take several values after one flag
(``--answers a.jsonl b.jsonl``) as well as repetition. Only options the user gave are passed on, so a
``--config`` file's values are overridden by the command line and not by defaults.
"""

from __future__ import annotations

import typing
from typing import Any

import click
from click.core import ParameterSource

from evalscope.arena.config import ArenaConfig
from evalscope.cli.suggest import StrictSuggestCommand

_MULTI = {
    str(info.json_schema_extra["cli"])
    for info in ArenaConfig.model_fields.values()
    if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("kind") in ("list", "map")
}


def _choices(annotation: Any) -> list[str]:
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Literal:
            return [str(c) for c in typing.get_args(arg)]
    return []


class ArenaCommand(StrictSuggestCommand):
    """Accepts ``--answers a.jsonl b.jsonl`` (several values after one list option)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(args):
            a = args[i]
            i += 1
            if a not in _MULTI:
                out.append(a)
                continue
            vals: list[str] = []
            while i < len(args) and not args[i].startswith("--"):
                vals.append(args[i])
                i += 1
            for v in vals or [""]:
                out += [a, v]
        return super().parse_args(ctx, out)


def _build(func: Any) -> Any:
    for name, info in reversed(list(ArenaConfig.model_fields.items())):
        extra = info.json_schema_extra
        if not isinstance(extra, dict) or not extra.get("cli"):
            continue
        opt, kind = str(extra["cli"]), extra["kind"]
        metavar = extra.get("metavar")
        default = info.get_default(call_default_factory=True)
        shown = "" if default in (None, [], {}) or kind == "flag" else f" [default: {default}]"
        help_text = (info.description or "") + shown
        if kind == "flag":
            func = click.option(opt, name, is_flag=True, default=False, help=help_text)(func)
        elif kind in ("list", "map"):
            func = click.option(opt, name, multiple=True, help=help_text, metavar=metavar)(func)
        elif kind == "choice":
            func = click.option(opt, name, type=click.Choice(_choices(info.annotation)), help=help_text)(func)
        else:
            ptype = {"int": click.INT, "float": click.FLOAT}.get(str(kind), click.STRING)
            func = click.option(opt, name, type=ptype, default=None, help=help_text, metavar=metavar)(func)
    return click.option(
        "--config",
        "config_file",
        default=None,
        help="YAML or JSON file of options (field names); flags override it.",
    )(func)


@click.command(
    "arena",
    cls=ArenaCommand,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@_build
def arena(config_file: str | None, **kwargs: Any) -> None:
    """Compare models with an LLM judge (single grading, pairwise against a baseline, or all pairs).

    \b
    Candidates come from --models NAME=URL (answers generated and journaled) or --answers FILE...; the
    judge from --judge-model/--judge-api-url. Without --judge-api-url the built-in simulator judges (it
    says so), so this runs with no server:
      evalscope arena --models alpha=sim beta=sim gamma=sim --sim-ratings alpha=1100 beta=1000 gamma=900
    Writes <work-dir>/<run>/arena/report.json (schema: docs/arena.md) and the judgment journal.

    Exit codes: 0 ok, 2 bad option/config/file, 3 judge endpoint failed, 130 interrupted.
    """
    from evalscope.cli import run_cli_command

    ctx = click.get_current_context()
    given: dict[str, Any] = {}
    for name, value in kwargs.items():
        if ctx.get_parameter_source(name) in (ParameterSource.DEFAULT, None):
            continue
        if isinstance(value, tuple):
            value = [v for v in value if v != ""]
            if not value:
                continue
        given[name] = value
    run_cli_command(_main, config_file, given, debug=bool(given.get("debug")))


def _main(config_file: str | None, given: dict[str, Any]) -> None:
    from rich.console import Console

    from evalscope.arena.config import load_arena_file, make_arena_config
    from evalscope.arena.report import render_console
    from evalscope.arena.runner import run_arena

    data: dict[str, Any] = load_arena_file(config_file) if config_file else {}
    data.update(given)
    cfg = make_arena_config(data)  # with --resume, the runner puts the fields given now over the saved ones
    result = run_arena(cfg)
    if not cfg.quiet:
        render_console(result.report, Console(highlight=False))
    click.echo(f"Report: {result.run_dir / 'arena' / 'report.json'}")
