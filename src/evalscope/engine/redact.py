"""Keep secrets out of logs, saved configs, records and reports.

Two layers: key-based (any mapping key that looks like a credential is masked wherever it is saved) and
value-based (every secret the process was given is registered, and :func:`scrub` replaces it in free text
such as error messages echoed back by a server).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# Whole key names (optionally prefixed: ``hf_token``, ``openai_api_key``), so that counters such as
# ``max_tokens`` or ``prompt_tokens`` are not mistaken for credentials.
_SECRET_KEY = re.compile(
    r"^(.*[_-])?(api[_-]?key|apikey|authorization|auth|token|access[_-]?token|secret|client[_-]?secret|"
    r"password|passwd|cookie|bearer)$",
    re.I,
)
_SECRETS: set[str] = set()
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{6,}", re.I)


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`scrub` masks it in any text (values shorter than 4 chars are ignored)."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """Replace every registered secret and any bearer token in ``text``."""
    for s in _SECRETS:
        if s in text:
            text = text.replace(s, MASK)
    return _BEARER.sub(r"\1" + MASK, text)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.match(key))


def redact(obj: Any) -> Any:
    """A deep copy of ``obj`` with credential-looking keys masked and registered secrets scrubbed."""
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            if isinstance(k, str) and is_secret_key(k) and v not in (None, "", [], {}):
                out[k] = MASK
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return scrub(obj)
    return obj
