"""Fail-fast endpoint checks with precise hints, before any measured request.

At most three small requests with short timeouts: ``GET /v1/models`` (reachability, auth, served models),
then one tiny real request to the endpoint (path, model, body acceptance). Each failure becomes one
:class:`EndpointError` line naming the cause and the fix; it never loops.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ParamSpec

import orjson

from evalscope.engine.client import Client, GetFailed
from evalscope.engine.records import Request
from evalscope.engine.redact import redact_url, scrub
from evalscope.engine.session import base_url
from evalscope.errors import EndpointError

#: connect, read (between bytes), total seconds for the preflight GET
_PREFLIGHT_TIMEOUTS = (5.0, 10.0, 15.0)


@dataclass(slots=True)
class PreflightResult:
    """What preflight learned: served models (empty if the server has no /v1/models) and the probe latency."""

    served_models: list[str] = field(default_factory=list)
    probe_ms: float | None = None


def _describe_connect_error(exc: GetFailed, url: str) -> EndpointError:
    url = redact_url(url) or ""
    if exc.kind == "dns":
        return EndpointError(f"cannot resolve the host of {url}", "check the host name in --url")
    if exc.kind == "connect":
        return EndpointError(
            f"connection refused at {url} ({exc.detail})",
            "is the server running and listening on that host:port? check --url",
        )
    if exc.kind == "timeout":
        return EndpointError(
            f"no answer from {url} within the preflight timeout", "check --url and the network"
        )
    return EndpointError(f"cannot reach {url}: {scrub(exc.detail)}", "check --url")


_P = ParamSpec("_P")


def url_derivation(client: Client) -> str:
    """How the URL that was tried is derived from --url, when a path was appended to what the user gave."""
    from urllib.parse import urlsplit

    suffix = client.protocol.default_path
    url = str(client.url)
    if not url.endswith(suffix):
        return ""
    given = url[: -len(suffix)]
    if urlsplit(given).path.strip("/") == "":
        return ""
    return f"derived from --url {given} + {suffix} (a URL not ending in an endpoint path gets it appended)"


def _explain_404(
    func: Callable[_P, Awaitable[PreflightResult]],
) -> Callable[_P, Awaitable[PreflightResult]]:
    """A wrong-path 404 names the URL tried; this adds how that URL came from --url (users never typed it)."""

    @functools.wraps(func)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> PreflightResult:
        try:
            return await func(*args, **kwargs)
        except EndpointError as exc:
            client = args[0] if args else kwargs.get("client")
            if isinstance(client, Client) and "answered 404 (wrong path)" in exc.message:
                how = url_derivation(client)
                if how:
                    exc.message = f"{exc.message}; {how}"
            raise

    return wrapper


@_explain_404
async def preflight(client: Client, check_model: bool = True) -> PreflightResult:
    """Check the endpoint behind ``client``; raise :class:`EndpointError` with a hint on any problem.

    If ``client.model`` is empty and the server lists models, the first served model is adopted.
    """
    result = PreflightResult()
    root = base_url(client.url)
    try:
        models_status, _headers, body = await client.get(f"{root}/v1/models", *_PREFLIGHT_TIMEOUTS)
    except GetFailed as exc:
        raise _describe_connect_error(exc, root) from None
    if models_status in (401, 403):
        raise EndpointError(
            f"the endpoint rejected the API key (HTTP {models_status})",
            "check --api-key, --api-key-file or EVALSCOPE_API_KEY / OPENAI_API_KEY",
        )
    if models_status == 200:
        try:
            data = orjson.loads(body)
            result.served_models = [str(m["id"]) for m in data.get("data", []) if "id" in m]
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
            result.served_models = []

    if not client.model:
        if not result.served_models:
            raise EndpointError(
                "no --model given and the server does not list its models", "pass --model NAME"
            )
        client.model = result.served_models[0]
    if check_model and result.served_models and client.model not in result.served_models:
        raise EndpointError(
            f"model {client.model!r} is not served at {root}",
            f"served models: {', '.join(result.served_models[:20])}; pass one with --model",
        )

    probe = Request(request_id="preflight", prompt="Hi", max_tokens=1)
    rec = await client.send(probe)
    if rec.ok:
        if rec.end_ns is not None:
            result.probe_ms = (rec.end_ns - rec.sent_ns) / 1e6
        return result
    err = rec.error
    assert err is not None
    if err.kind in ("connect", "dns"):
        raise EndpointError(f"cannot reach {redact_url(client.url)}: {err.message[:200]}", "check --url")
    if err.kind == "http_status":
        status = err.http_status
        if status in (401, 403):
            raise EndpointError(
                f"the endpoint rejected the API key (HTTP {status})",
                "check --api-key, --api-key-file or EVALSCOPE_API_KEY / OPENAI_API_KEY",
            )
        if status == 404:
            low = err.message.lower()
            if "model" in low and ("not" in low or "exist" in low):
                served = (
                    f"served models: {', '.join(result.served_models[:20])}; " if result.served_models else ""
                )
                raise EndpointError(
                    f"model {client.model!r} is not served ({err.message[:200]})", served + "pass --model"
                )
            raise EndpointError(
                f"{redact_url(client.url)} answered 404 (wrong path)",
                f"for --api {client.protocol.name} use a URL ending in {client.protocol.default_path}",
            )
        if status in (400, 422):
            raise EndpointError(
                f"the endpoint rejected the request body (HTTP {status}): {err.message[:300]}",
                "check --model, --api and --extra-args",
            )
        if status is not None and (status == 429 or status >= 500):
            # Transient: the server is up and answering; let the run measure it.
            return result
    if err.kind in ("read_timeout", "total_timeout"):
        raise EndpointError(
            f"the endpoint did not answer a 1-token request ({err.message})",
            "check the server's health and --read-timeout",
        )
    raise EndpointError(
        f"the test request failed: {err.kind}: {err.message[:200]}",
        "use --no-test-connection to skip this check",
    )
