"""The ``evalscope`` command: a click group whose subcommands are imported only when invoked.

Keeping subcommand modules (and aiohttp, numpy, transformers behind them) out of ``--help`` and
``--version`` keeps the CLI start-up well under half a second.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from evalscope import __version__

# name -> (module, attribute, one-line help shown by `evalscope --help` without importing the module)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "arena": (
        "evalscope.cli.arena",
        "arena",
        "Compare models with an LLM judge (Bradley-Terry ratings, biases).",
    ),
    "perf": (
        "evalscope.cli.perf",
        "perf",
        "Stress-test an OpenAI-compatible endpoint (or the built-in simulator).",
    ),
    "selftest": (
        "evalscope.cli.selftest",
        "selftest",
        "Measure this client's own timing error on the simulator.",
    ),
    "eval": (
        "evalscope.cli.eval",
        "eval_cmd",
        "Measure accuracy on standard benchmarks against an endpoint.",
    ),
    "sim": ("evalscope.cli.sim", "sim", "Run the built-in OpenAI-compatible simulator server."),
    "report": ("evalscope.cli.report", "report", "Regenerate a run's report (html, md, csv, json)."),
    "app": ("evalscope.cli.app", "app", "Browse, follow and compare runs in a local web app."),
}


class LazyGroup(click.Group):
    """A group that lists commands from a static table and imports one only when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(_COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        cmd: click.Command = getattr(module, spec[1])
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in sorted(_COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evalscope")
def cli() -> None:
    """evalscope: measure LLM inference services (load with `perf`, accuracy with `eval`).

    Exit codes: 0 ok, 1 internal error, 2 usage/config, 3 endpoint/auth, 4 error threshold exceeded,
    5 --strict check failed, 130 interrupted.
    """


def run_cli_command(func: Any, *args: Any, debug: bool = False, **kwargs: Any) -> Any:
    """Run a command body, turning :class:`EvalscopeError` into one line on stderr and its exit code."""
    from evalscope.errors import EvalscopeError

    try:
        return func(*args, **kwargs)
    except EvalscopeError as exc:
        if debug:
            raise
        from evalscope.engine.redact import scrub

        click.echo(f"Error: {scrub(exc.one_line())}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="evalscope")
