"""Which proxy, if any, a request to a URL goes through: the standard environment variables.

``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` (either case) choose the proxy by the URL's scheme, ``NO_PROXY``
exempts hosts (urllib's rules: suffixes, ``*``), and loopback hosts are never proxied (a load test of a local
server through a proxy measures the proxy). Both transports use this one answer.
"""

from __future__ import annotations

import ipaddress
from urllib import request as _urlrequest
from urllib.parse import urlsplit
from urllib.request import getproxies_environment

#: public in the standard library, missing from typeshed
proxy_bypass_environment = _urlrequest.proxy_bypass_environment  # type: ignore[attr-defined]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(url: str) -> str | None:
    """The proxy URL for ``url`` from the environment, or None (no proxy set, ``NO_PROXY``, loopback)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or _is_loopback(host):
        return None
    proxies = getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    if proxy_bypass_environment(host, proxies):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    return proxy
