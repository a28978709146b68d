"""The async request engine shared by perf and eval."""

from evalscope.engine.client import Client
from evalscope.engine.records import ERROR_KINDS, ErrorInfo, Request, RequestRecord
from evalscope.engine.session import Timeouts, make_session, normalize_url, run

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
