"""Timeouts, URL normalisation, the event loop runner, and the entry to the aiohttp session factory.

The aiohttp session itself (``--transport aiohttp``) is made in :mod:`evalscope.engine.aio`, imported only
then: the built-in transport never loads aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from evalscope.errors import ConfigError

T = TypeVar("T")
_KNOWN_SUFFIXES = ("/chat/completions", "/completions", "/embeddings", "/rerank", "/messages", "/generate")


@dataclass(slots=True, frozen=True)
class Timeouts:
    """Seconds; ``total_s=None`` means no overall cap (long generations are legitimate)."""

    connect_s: float = 30.0
    read_s: float = 600.0
    total_s: float | None = None


def normalize_url(url: str, default_path: str) -> str:
    """Accept a full endpoint URL, a ``.../v1`` base, or a bare host, and return the endpoint URL.

    ``http://h:8000`` and ``http://h:8000/v1`` both become ``http://h:8000/v1/chat/completions`` for chat.
    """
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        from evalscope.engine.redact import redact_url

        raise ConfigError(
            f"--url {redact_url(url)!r} is not an http(s) URL",
            "pass e.g. http://127.0.0.1:8000/v1/chat/completions",
        )
    path = parts.path.rstrip("/")
    if not path.endswith(_KNOWN_SUFFIXES):
        if path.endswith("/v1"):
            path = path[: -len("/v1")] + default_path
        else:
            path = path + default_path
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def base_url(endpoint_url: str) -> str:
    """``http://h:8000/v1/chat/completions`` -> ``http://h:8000`` (root of the server, for /v1/models etc.)."""
    parts = urlsplit(endpoint_url)
    path = parts.path
    idx = path.find("/v1/")
    prefix = path[:idx] if idx >= 0 else ""
    return urlunsplit((parts.scheme, parts.netloc, prefix, "", ""))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh event loop, uvloop when installed (lower per-event overhead)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
