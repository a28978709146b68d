"""``evalscope app``: browse, follow and compare the runs of an outputs directory in a local web app."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from evalscope.cli import run_cli_command

_HELP = """Serve a local web app over the runs of an outputs directory.

\b
Lists every perf and eval run below --outputs, shows each with the views of its report.html, follows a
running run live, compares two or three runs, and pages through large runs without loading every record.
Bound to 127.0.0.1 unless --host says otherwise (it has no authentication).
  evalscope app                         # ./outputs on http://127.0.0.1:7860/
  evalscope app --outputs runs --port 0 # any free port

Exit codes: 0 stopped, 2 bad option (e.g. no such directory, port in use), 130 interrupted.
"""


def _main(outputs: Path, host: str, port: int) -> None:
    import asyncio

    from evalscope.errors import ConfigError
    from evalscope.report.app import serve

    if not outputs.is_dir():
        raise ConfigError(
            f"--outputs {str(outputs)!r} is not a directory", "pass the directory that holds your runs"
        )
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        click.echo(
            f"Warning: serving on {host}: anyone who can reach it can read every run (no authentication).",
            err=True,
        )

    def ready(url: str) -> None:
        click.echo(f"evalscope app: {url} (outputs {outputs.resolve()}); Ctrl-C stops", err=False)

    try:
        asyncio.run(serve(outputs, host, port, ready))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", "choose another --port"
        ) from None


@click.command("app", help=_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--outputs",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("outputs"),
    show_default=True,
    help="Directory holding run directories (searched two levels deep).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=7860, show_default=True, help="Port (0: any free)."
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def app(outputs: Path, host: str, port: int, debug: bool) -> None:
    run_cli_command(_main, outputs, host, port, debug=debug)
