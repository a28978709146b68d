"""The built-in simulator as the eval endpoint when no ``--api-url`` is given: a :class:`Model` that starts a
``SimProcess`` and talks to it over HTTP like any endpoint (so eval on the simulator exercises the real path)."""

from __future__ import annotations

import asyncio
from typing import Any

from evalscope.eval.models.api import ApiModel
from evalscope.eval.models.base import Capabilities, Generation, ModelStats

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


class BuiltinSimModel:
    """A :class:`Model` backed by a simulator subprocess started in :meth:`start` and stopped in :meth:`aclose`.

    ``api_kwargs`` are :class:`ApiModel`'s (policy, timeouts, cache...); the URL is the simulator's.
    """

    endpoint_id = BUILTIN_ENDPOINT

    def __init__(self, model: str = BUILTIN_MODEL, **api_kwargs: Any) -> None:
        self._name = model or BUILTIN_MODEL
        self._api_kwargs = api_kwargs
        self.sim: Any = None
        self.url: str | None = None
        self._inner: ApiModel | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return self._name if self._inner is None else self._inner.name

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=bool(self._api_kwargs.get("stream", True)), logprobs=False)

    async def start(self, check: bool = True, check_model: bool = True) -> None:
        if self._closed:
            raise RuntimeError("BuiltinSimModel.start after aclose()")
        if self._inner is None:
            loop = asyncio.get_running_loop()
            self.sim = await loop.run_in_executor(None, start_builtin_sim, self._name)
            self.url = str(self.sim.url)
            self._inner = ApiModel(self.url, self._name, endpoint_id=BUILTIN_ENDPOINT, **self._api_kwargs)
        await self._inner.start(check=check, check_model=check_model)

    async def generate(
        self, messages: list[dict[str, Any]], params: dict[str, Any], request_id: str, repeat: int = 0
    ) -> Generation:
        if self._inner is None:
            raise RuntimeError("BuiltinSimModel.generate before start()")
        return await self._inner.generate(messages, params, request_id, repeat)

    def stats(self) -> ModelStats:
        return ModelStats() if self._inner is None else self._inner.stats()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._inner is not None:
                await self._inner.aclose()
        finally:
            sim, self.sim = self.sim, None
            if sim is not None:
                sim.stop()
