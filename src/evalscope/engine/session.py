"""aiohttp session factory sized for load testing, and URL normalisation.

Defaults differ from aiohttp's on purpose: no connection cap (aiohttp's default of 100 per session would
silently cap ``--parallel``), a 4 MiB read buffer (long-context streams are not throttled by 64 KiB reads),
and three separate timeouts: connect, idle read (the gap between bytes: a stalled stream ends here, not at a
total timeout minutes later), and an optional total.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from evalscope.errors import ConfigError

T = TypeVar("T")
_KNOWN_SUFFIXES = ("/chat/completions", "/completions", "/embeddings", "/rerank", "/messages", "/generate")


@dataclass(slots=True, frozen=True)
class Timeouts:
    """Seconds; ``total_s=None`` means no overall cap (long generations are legitimate)."""

    connect_s: float = 30.0
    read_s: float = 600.0
    total_s: float | None = None


def make_session(
    timeouts: Timeouts, limit: int = 0, read_bufsize: int = 4 * 1024 * 1024
) -> aiohttp.ClientSession:
    """A ClientSession for many concurrent streams; the caller closes it."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(
        total=timeouts.total_s, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s, connect=None
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        read_bufsize=read_bufsize,
        max_line_size=1024 * 1024,
        max_field_size=1024 * 1024,
        auto_decompress=True,
        trust_env=False,
    )


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
