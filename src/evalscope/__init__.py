"""evalscope: measure LLM inference services — load (``perf``) and accuracy (``eval``).

The public API is loaded lazily so that ``import evalscope`` (and ``evalscope --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "run_perf": "evalscope.perf.runner:run_perf",
    "PerfConfig": "evalscope.perf.config:PerfConfig",
    "run_eval": "evalscope.eval.runner:run_eval",
    "EvalConfig": "evalscope.eval.config:EvalConfig",
    "run_task": "evalscope.run:run_task",
    "EvalscopeError": "evalscope.errors:EvalscopeError",
    "ConfigError": "evalscope.errors:ConfigError",
    "EndpointError": "evalscope.errors:EndpointError",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'evalscope' has no attribute {name!r}")
    mod, _, attr = target.partition(":")
    value = getattr(importlib.import_module(mod), attr)
    globals()[name] = value
    return value
