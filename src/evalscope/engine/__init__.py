"""The async request engine shared by perf and eval."""

from typing import TYPE_CHECKING, Any

from evalscope.engine.client import Client
from evalscope.engine.records import ERROR_KINDS, ErrorInfo, Request, RequestRecord
from evalscope.engine.session import Timeouts, normalize_url, run

if TYPE_CHECKING:
    from evalscope.engine.aio import make_session

__all__ = [
    "ERROR_KINDS",
    "Client",
    "ErrorInfo",
    "Request",
    "RequestRecord",
    "Timeouts",
    "make_session",
    "normalize_url",
    "run",
]


def __getattr__(name: str) -> Any:
    if name == "make_session":  # the aiohttp session factory: aiohttp is imported only when it is asked for
        from evalscope.engine.aio import make_session

        return make_session
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
