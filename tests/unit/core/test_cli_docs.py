"""docs/cli.md is generated from the commands; it must name every option of every command."""

from __future__ import annotations

from pathlib import Path

import click

from evalscope.cli import _COMMANDS, cli

DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def test_cli_reference_names_every_option() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = []
    ctx = click.Context(cli, info_name="evalscope")
    for name in _COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None
        assert f"## `evalscope {name}`" in text, name
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                for opt in p.opts:
                    if opt.startswith("--") and opt not in text:
                        missing.append(f"{name} {opt}")
    assert not missing, f"docs/cli.md is stale (run python scripts/gen_cli_docs.py): {missing}"
