"""``evalscope report RUN_DIR``: (re)generate a run's report from its files (old runs, crashed runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from evalscope.cli import run_cli_command

_HELP = """Regenerate the report of a perf or eval run from its run directory.

\b
Reads only the run's files (manifest.json, summary.json, records.jsonl; or the eval journals and
reports/), so it works for old runs and for runs interrupted by a crash.
  evalscope report outputs/20260101_120000_perf                 # writes report.html there
  evalscope report outputs/20260101_120000 --format md           # Markdown on stdout
  evalscope report RUN --format csv -o stages.csv

Exit codes: 0 ok, 1 internal error, 2 not a run directory / bad option.
"""


def _main(run_dir: Path, fmt: str, output: Path | None, debug: bool = False) -> None:
    try:
        _report(run_dir, fmt, output)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        from evalscope.errors import EvalscopeError

        if isinstance(exc, EvalscopeError) or debug:
            raise
        from evalscope.engine.redact import scrub

        click.echo(
            f"Error: internal error: {type(exc).__name__}: {scrub(str(exc))[:300]} (rerun with --debug)",
            err=True,
        )
        sys.exit(1)


def _report(run_dir: Path, fmt: str, output: Path | None) -> None:
    from evalscope.engine.redact import register_secret
    from evalscope.errors import ConfigError
    from evalscope.report.model import RunDirError, build_model

    for var in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY"):  # belt and braces: the run's files are already masked
        import os

        register_secret(os.environ.get(var))
    try:
        model = build_model(run_dir)
    except RunDirError as exc:
        raise ConfigError(str(exc), "pass the directory of one perf or eval run") from None
    dest: Path | None
    if fmt == "html":
        from evalscope.report.html import render_html

        text = render_html(model)
        dest = output or run_dir / "report.html"
    else:
        from evalscope.report import text as tx

        text = {"md": tx.to_markdown, "csv": tx.to_csv, "json": tx.to_json}[fmt](model)
        dest = output
    if dest is None:
        sys.stdout.write(text)
        return
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(dest)
    click.echo(f"{fmt} report: {dest} ({len(text.encode()) / 1e6:.2f} MB)", err=True)


@click.command("report", help=_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md", "csv", "json"]),
    default="html",
    show_default=True,
    help="html: self-contained page (written to RUN_DIR/report.html); md, csv, json: printed.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def report(run_dir: Path, fmt: str, output: Path | None, debug: bool, **_: Any) -> None:
    run_cli_command(_main, run_dir, fmt, output, debug, debug=debug)
