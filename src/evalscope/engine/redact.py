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


# Query parameters that carry credentials in URLs (``?api_key=``, ``&token=``, Azure SAS ``sig=``, ...).
_SECRET_PARAM = re.compile(
    r"^(.*[_-])?(api[_-]?key|apikey|key|token|access[_-]?token|auth|authorization|secret|password|passwd|"
    r"sig|signature|code|credential|credentials|session)$",
    re.I,
)


def is_secret_param(name: str) -> bool:
    """True for a URL query parameter name that carries a credential (``key``, ``api_key``, ``sig``...)."""
    return bool(_SECRET_PARAM.match(name)) or is_secret_key(name)


def _url_secrets(url: str) -> tuple[str | None, list[str]]:
    """(userinfo, credential query values) of ``url``; nothing when it does not parse."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return None, []
    netloc = parts.netloc
    userinfo = netloc.rpartition("@")[0] if "@" in netloc else None
    values = [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if v and is_secret_param(k)]
    for piece in parts.query.split("&"):  # the raw (percent-encoded) spelling too, as it appears in text
        name, eq, raw = piece.partition("=")
        if eq and raw and is_secret_param(name):
            values.append(raw)
    return userinfo or None, values


def register_url_secrets(url: str | None) -> None:
    """Register the userinfo (``user:key@``) and credential query values of ``url`` with :func:`scrub`."""
    if not url:
        return
    from urllib.parse import unquote

    userinfo, values = _url_secrets(url)
    if userinfo:
        user, sep, password = userinfo.partition(":")
        # ``user:key@``: the key is the secret (a user name such as "user" must not be masked in all text);
        # ``key@`` alone: the user part is the credential
        secret = password if sep else user
        for s in (userinfo if sep else None, secret, unquote(secret)):
            register_secret(s)
    for v in values:
        register_secret(v)


def redact_url(url: str | None) -> str | None:
    """``url`` fit to print or save: userinfo becomes ``***@``, credential query values ``***``.

    Every place that prints or saves an endpoint URL goes through this; :func:`register_url_secrets` also
    makes :func:`scrub` mask the same values in free text (error messages that echo the URL).
    """
    if not url:
        return url
    from urllib.parse import unquote_plus, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pieces = []
        for piece in query.split("&"):
            name, eq, _value = piece.partition("=")
            if eq and is_secret_param(unquote_plus(name)):
                pieces.append(f"{name}={MASK}")
            else:
                pieces.append(piece)
        query = "&".join(pieces)
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))
