"""Click options generated from a pydantic config model's field metadata (one source of truth per command).

A field takes part when its ``json_schema_extra`` holds ``cli`` (the option name). ``kind`` says how:

- ``value`` (default): one value; with ``typed=True`` the click type follows the annotation (int, float,
  Path, a Literal becomes a choice), otherwise the string goes to pydantic, which validates it;
- ``flag``: ``--x`` sets True; ``negflag``: ``--no-x`` sets False (the field's default is True);
- ``list`` / ``map``: may repeat (``multiple=True``);
- ``optional``: ``--x`` alone means ``"local"``, ``--x VALUE`` passes VALUE.

Optional keys: ``metavar``, ``help`` (appended to the description on the command line only), ``text`` (the
command line's wording instead of the description, e.g. for a ``--no-x`` flag), ``short``
(an extra spelling such as ``-n``), ``hidden``, ``nocase`` (a choice matched case-insensitively). Defaults are shown from the field, so help, config files and
the Python API cannot drift apart. Imported by the command modules only, never at ``evalscope --help`` time
beyond what those modules already load.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import click
from pydantic import BaseModel

LIST_KINDS = ("list", "map")


def cli_fields(model: type[BaseModel]) -> Iterator[tuple[str, dict[str, Any], str, Any, Any]]:
    """(field name, metadata, description, default, annotation) of every field with a ``cli`` name."""
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if not isinstance(extra, dict) or not extra.get("cli"):
            continue
        if info.default_factory is not None:
            default = info.default_factory()  # type: ignore[call-arg]
        else:
            default = None if info.is_required() else info.default
        yield name, extra, info.description or "", default, info.annotation


def fmt_default(default: Any) -> str:
    """`` [default: X]`` for help text; nothing for None, empty, booleans."""
    if default is None or default == {} or default == [] or default == "" or isinstance(default, bool):
        return ""
    if isinstance(default, list):
        return " [default: " + " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default) + "]"
    return f" [default: {default}]"


def _click_type(annotation: Any) -> Any:
    """The click type for an annotation (``X | None`` unwrapped); None when a plain string is right."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return None
        annotation = rest[0]
        args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal and all(isinstance(a, str) for a in args):
        return click.Choice([str(a) for a in args])
    if annotation is bool:
        return None
    if annotation is int:
        return int
    if annotation is float:
        return float
    if annotation is Path:
        return click.Path(path_type=Path)
    return None


def build_options(
    model: type[BaseModel], *, typed: bool = False, short: dict[str, str] | None = None
) -> list[Callable[[Any], Any]]:
    """Click option decorators for ``model``'s CLI fields, in field order (``short``: field -> ``-x``)."""
    opts: list[Callable[[Any], Any]] = []
    for name, extra, desc, default, annotation in cli_fields(model):
        opt = str(extra["cli"])
        kind = str(extra.get("kind", "value"))
        alias = extra.get("short") or (short or {}).get(name)
        spellings = [opt] + ([str(alias)] if alias else [])
        hidden = bool(extra.get("hidden", False))
        more = str(extra.get("help", ""))
        desc = str(extra.get("text", desc))
        metavar = extra.get("metavar")
        if kind == "flag":
            text = desc + more
            opts.append(click.option(*spellings, name, is_flag=True, default=None, help=text, hidden=hidden))
        elif kind == "negflag":
            opts.append(
                click.option(
                    *spellings, name, flag_value=False, default=None, help=desc + more, hidden=hidden
                )
            )
        elif kind == "optional":
            opts.append(
                click.option(
                    *spellings,
                    name,
                    is_flag=False,
                    flag_value="local",
                    default=None,
                    help=desc + fmt_default(default) + more,
                    metavar=metavar,
                    hidden=hidden,
                )
            )
        elif kind in LIST_KINDS:
            opts.append(
                click.option(
                    *spellings,
                    name,
                    multiple=True,
                    type=str,
                    help=desc + fmt_default(default) + more,
                    metavar=metavar,
                    hidden=hidden,
                )
            )
        else:
            ctype = _click_type(annotation) if typed else None
            if isinstance(ctype, click.Choice) and extra.get("nocase"):
                ctype = click.Choice(list(ctype.choices), case_sensitive=False)
            opts.append(
                click.option(
                    *spellings,
                    name,
                    type=ctype or str,
                    default=None,
                    help=desc + fmt_default(default) + more,
                    metavar=metavar,
                    hidden=hidden,
                )
            )
    return opts


def apply(func: Any, decorators: list[Callable[[Any], Any]]) -> Any:
    """Apply decorators so that the first one listed comes first in ``--help``."""
    for deco in reversed(decorators):
        func = deco(func)
    return func
