"""What the ``eval``, ``perf`` and ``arena`` configs share: common options, config files, validation errors.

* Options declared alike: each is an ``Annotated`` type carrying its pydantic ``Field`` (help text and the CLI
  metadata read by :mod:`evalscope.cli._gen`), so a config declares it in one line
  (``server_bin: ServerBin = None``) and the front ends cannot drift apart (as the API-key rules once did).
* :func:`read_config_file`: one reader of YAML / JSON config files, with one set of error lines.
* :func:`validate_config`: one translation of pydantic's errors into the one-line :class:`ConfigError` every
  command prints (option spelled as on the command line, secrets masked, a close match for a typo).

May import: ``evalscope.errors`` and pydantic (a leaf below the front ends).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError

from evalscope.errors import ConfigError

ApiKey = Annotated[
    SecretStr | None,
    Field(
        description="API key (else --api-key-file, $EVALSCOPE_API_KEY, $OPENAI_API_KEY). Never saved.",
        json_schema_extra={"cli": "--api-key", "help": " Prefer the env variables or --api-key-file."},
    ),
]
ApiKeyFile = Annotated[
    Path | None,
    Field(
        description="Read the API key from this file (first line; an empty or unreadable file is an error).",
        json_schema_extra={"cli": "--api-key-file"},
    ),
]
Transport = Annotated[
    Literal["builtin", "aiohttp"],
    Field(
        description="HTTP client: builtin (evalscope's own HTTP/1.1 transport, lowest overhead) or aiohttp "
        "(the fallback; also tunnels https through a proxy).",
        json_schema_extra={"cli": "--transport"},
    ),
]
ServerArgs = Annotated[
    str | None,
    Field(
        description="Extra arguments of the managed server, one string split like a shell line "
        "(e.g. '--max-model-len 4096'); not --host / --port.",
        json_schema_extra={"cli": "--server-args"},
    ),
]
ServerBin = Annotated[
    str | None,
    Field(
        description="The managed server's executable (default: vllm, llama-server, swift on PATH; for sglang "
        "the Python that has it); env EVALSCOPE_VLLM_BIN etc. also work.",
        json_schema_extra={"cli": "--server-bin"},
    ),
]
ServerTimeout = Annotated[
    float,
    Field(
        gt=0,
        description="Seconds to wait for the managed server to answer /v1/models before giving up (exit 3).",
        json_schema_extra={"cli": "--server-timeout"},
    ),
]
Debug = Annotated[
    bool, Field(description="Show tracebacks.", json_schema_extra={"cli": "--debug", "kind": "flag"})
]


# ---- config files ----------------------------------------------------------------------------------------


def read_config_file(path: str | os.PathLike[str], what: str = "--config", *, mapping: bool = True) -> Any:
    """A YAML or JSON file (JSON by its ``.json`` suffix; YAML, which reads JSON too, otherwise).

    With ``mapping`` the top level must be a mapping (empty file: ``{}``). Every failure is one
    :class:`ConfigError` line naming ``what`` (the option or argument that named the file) and the file.
    """
    p = Path(path)
    where = f"{what} {str(p)!r}"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml  # lazy: only config files need it

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - json and yaml raise different error trees; one line either way
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{where}: not valid JSON/YAML ({first})", "fix the file") from None
    if not mapping:
        return data
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of option names to values")
    return data


# ---- validation errors -----------------------------------------------------------------------------------

_PLAIN = {
    "int_parsing": "must be an integer",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
}

M = TypeVar("M", bound=BaseModel)


def option_name(model: type[BaseModel], field: str) -> str:
    """The command-line spelling of ``field`` of ``model`` (``max_tokens`` -> ``--max-tokens``)."""
    info = model.model_fields.get(field) or next(
        (f for f in model.model_fields.values() if f.alias == field), None
    )
    extra = info.json_schema_extra if info is not None else None
    if isinstance(extra, dict) and isinstance(extra.get("cli"), str):
        return str(extra["cli"]).split("/")[0]
    return "--" + field.replace("_", "-")


def _secret(field: str) -> bool:
    return "key" in field or "token" in field.split("_")


def _one_error(err: Mapping[str, Any], model: type[BaseModel], given: Mapping[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    kind = str(err.get("type", ""))
    if not loc:
        return msg
    field = loc[0]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(field, list(model.model_fields), n=1)
        return f"unknown option {field!r}" + (f"; did you mean {close[0]!r}?" if close else "")
    opt = option_name(model, field) + "".join(f"[{p}]" for p in loc[1:])
    if kind == "missing":
        return f"{opt} is required"
    text = _PLAIN.get(kind, msg.replace("Input should be", "allowed:") if kind == "literal_error" else msg)
    value = given.get(field, err.get("input")) if len(loc) == 1 else err.get("input")
    if field == "headers" or isinstance(value, dict | list):  # header values are often credentials
        return f"{opt}: {text}"
    shown = "***" if _secret(field) else repr(value)[:80]
    return f"{opt}={shown}: {text}"


def validate_config(model: type[M], data: Mapping[str, Any], what: str = "", hint: str | None = None) -> M:
    """``model.model_validate(data)``; a failure is one :class:`ConfigError` line (up to three problems)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        msg = "; ".join(_one_error(e, model, data) for e in exc.errors()[:3])
        raise ConfigError(f"{what}{msg}", hint) from None


__all__ = [
    "ApiKey",
    "ApiKeyFile",
    "Debug",
    "ServerArgs",
    "ServerBin",
    "ServerTimeout",
    "Transport",
    "option_name",
    "read_config_file",
    "validate_config",
]
