"""``evalscope sim``: run the built-in OpenAI-compatible simulator.

Every option is generated from :class:`~evalscope.sim.config.SimConfig` (one declaration per knob: default,
bounds and help live there). Options given on the command line override ``--config-json``.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

import click

from evalscope.sim.config import SimConfig

#: Fields whose flag name is not simply the field name with dashes.
_FLAG_NAMES: dict[str, str] = {"models": "--model"}
#: Fields only settable through --config-json.
_SKIP = frozenset({"script_rules", "judge"})


def _base_type(annotation: Any) -> Any:
    """Strip ``X | None`` down to ``X``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def _field_options() -> list[click.Option]:
    """One click option per SimConfig field; every default is None so only explicit flags override."""
    options: list[click.Option] = []
    for name, info in SimConfig.model_fields.items():
        if name in _SKIP:
            continue
        flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
        base = _base_type(info.annotation)
        default = info.get_default(call_default_factory=True)
        help_text = f"{info.description or ''} [default: {default}]"
        if base is bool:
            options.append(click.Option([f"{flag}/--no-{flag[2:]}", name], default=None, help=help_text))
        elif typing.get_origin(base) is list:
            options.append(click.Option([flag, name], multiple=True, help=help_text + " (repeatable)"))
        elif typing.get_origin(base) is Literal:
            choices = [str(c) for c in typing.get_args(base)]
            options.append(
                click.Option([flag, name], type=click.Choice(choices), default=None, help=help_text)
            )
        else:
            ptype = {int: click.INT, float: click.FLOAT}.get(base, click.STRING)
            options.append(click.Option([flag, name], type=ptype, default=None, help=help_text))
    return options


def build_config(config_json: str | None, overrides: dict[str, Any]) -> SimConfig:
    """``--config-json`` (inline JSON or a file path) with explicit flags on top, validated once."""
    import orjson

    base: dict[str, Any] = {}
    if config_json:
        text = config_json if config_json.lstrip().startswith("{") else Path(config_json).read_text("utf-8")
        base = orjson.loads(text)
    for key, value in overrides.items():
        if value is None or (isinstance(value, tuple) and not value):
            continue
        base[key] = list(value) if isinstance(value, tuple) else value
    return SimConfig.model_validate(base)


def _run(
    host: str, port: int, config_json: str | None, port_file: str | None, loop: str, **overrides: Any
) -> None:
    """Start the simulator and block until SIGINT / SIGTERM."""
    import re

    from pydantic import ValidationError

    from evalscope.sim.policies import load_script
    from evalscope.sim.serve import run

    try:
        cfg = build_config(config_json, overrides)
        load_script(cfg)  # a missing script file or a bad pattern is a usage error, not a traceback
    except (ValidationError, ValueError, OSError, re.error) as exc:
        raise click.UsageError(f"invalid simulator config: {exc}") from exc
    try:
        run(cfg, host=host, port=port, port_file=port_file, loop=loop)
    except OSError as exc:  # busy / privileged / foreign address: one line, exit 2 (not a traceback)
        import errno
        import sys

        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        click.echo(
            f"Error: cannot listen on {host}:{port}: {exc.strerror} "
            "(stop what uses it, pick another --port, or --port 0 for a free one)",
            err=True,
        )
        sys.exit(2)


sim = click.Command(
    "sim",
    callback=_run,
    help=(
        "Run the built-in OpenAI-compatible simulator (chat, completions, embeddings, models, tokenize) "
        "with a latency model, reply policies and fault injection. Prints one line with the URL when ready."
    ),
    params=[
        click.Option(["--host"], default="127.0.0.1", show_default=True, help="Interface to bind."),
        click.Option(
            ["--port"], type=int, default=8000, show_default=True, help="Port (0 picks a free one)."
        ),
        click.Option(["--config-json"], default=None, help="SimConfig as inline JSON or a JSON file path."),
        click.Option(["--port-file"], default=None, help="Write the bound port to this file when ready."),
        click.Option(
            ["--loop"],
            type=click.Choice(["auto", "uvloop", "asyncio"]),
            default="auto",
            show_default=True,
            help="Event loop: auto = uvloop when installed.",
        ),
        *_field_options(),
    ],
)
