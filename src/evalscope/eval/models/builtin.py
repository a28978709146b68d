"""The built-in simulator as the eval endpoint when no ``--api-url`` is given."""

from __future__ import annotations

from typing import Any

#: Endpoint identity used in fingerprints and cache keys for the built-in simulator (its port varies).
BUILTIN_ENDPOINT = "builtin-sim"
BUILTIN_MODEL = "sim-model"


def start_builtin_sim(model: str, **overrides: Any) -> Any:
    """Start a ``SimProcess`` answering ``model`` with the ``choice`` policy; the caller stops it."""
    from evalscope.sim import SimConfig, SimProcess

    settings: dict[str, Any] = {"policy": "choice", "models": [model], "ttft_ms": 20.0, "itl_ms": 2.0}
    settings.update(overrides)
    proc = SimProcess(SimConfig(**settings))
    return proc.start()
