"""A model served by a server that eval starts for the run (``--backend vllm | llama.cpp | sglang | swift``).

:meth:`ManagedServerModel.start` launches the server (:mod:`evalscope.servers.managed`), waits until it answers
and then talks to it through an :class:`ApiModel` like any endpoint, so eval runs its normal path (retries,
cache, journal, reports). :meth:`aclose` stops the server's process tree and keeps its log in the run
directory. The endpoint identity does not contain the port, which changes every run: a ``--resume`` that
starts the server again keeps the same fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalscope.eval.models.api import ApiModel
from evalscope.eval.models.base import Capabilities, Generation, ModelStats


def managed_identity(backend: str, model: str, server_args: str | None) -> tuple[str, str]:
    """(served model name, endpoint id) of a managed server, known before it starts."""
    from evalscope.servers.managed import BACKEND_SPECS, _flag_value, served_name_for, split_server_args

    args = split_server_args(server_args)
    name = _flag_value(args, BACKEND_SPECS[backend].name_flags) or served_name_for(model)
    return name, f"managed:{backend}:{model}"


class ManagedServerModel:
    """A :class:`Model` whose endpoint is a server process started in :meth:`start`, stopped in :meth:`aclose`.

    ``stopping`` tells the start-up wait that the run was interrupted (the runner's first Ctrl-C); ``run_dir``
    gives the run directory once it exists, where the server's log and ``server.json`` are kept.
    """

    def __init__(
        self,
        backend: str,
        model: str,
        *,
        server_args: str | None = None,
        server_bin: str | None = None,
        timeout_s: float = 600.0,
        log_dir: Path = Path("./outputs"),
        endpoint_id: str | None = None,
        served_name: str | None = None,
        stopping: Callable[[], bool] | None = None,
        run_dir: Callable[[], Path | None] | None = None,
        say: Callable[[str], None] | None = None,
        **api_kwargs: Any,
    ) -> None:
        from evalscope.servers.managed import ManagedServer, split_server_args

        self.server = ManagedServer(
            backend,
            model,
            server_args=split_server_args(server_args),
            server_bin=server_bin,
            timeout_s=timeout_s,
            log_dir=log_dir,
            say=say,
        )
        if served_name:
            self.server.served_model = served_name
        self.endpoint_id = endpoint_id or f"managed:{backend}:{model}"
        self._stopping = stopping
        self._run_dir = run_dir
        self._api_kwargs = api_kwargs
        if self.server.api_key and not api_kwargs.get("api_key"):
            self._api_kwargs["api_key"] = self.server.api_key
        self._inner: ApiModel | None = None
        self._closed = False
        self.url: str | None = None

    @property
    def name(self) -> str:
        return self.server.served_model if self._inner is None else self._inner.name

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=bool(self._api_kwargs.get("stream", True)), logprobs=False)

    async def start(self, check: bool = True, check_model: bool = True) -> None:
        if self._closed:
            raise RuntimeError("ManagedServerModel.start after aclose()")
        if self._inner is None:
            self.server.launch()
            await self.server.await_ready(self._stopping)
            self.url = self.server.url
            self._inner = ApiModel(
                self.url, self.server.served_model, endpoint_id=self.endpoint_id, **self._api_kwargs
            )
        await self._inner.start(check=check, check_model=check_model)

    async def generate(
        self, messages: list[dict[str, Any]], params: dict[str, Any], request_id: str, repeat: int = 0
    ) -> Generation:
        if self._inner is None:
            raise RuntimeError("ManagedServerModel.generate before start()")
        return await self._inner.generate(messages, params, request_id, repeat)

    def stats(self) -> ModelStats:
        return ModelStats() if self._inner is None else self._inner.stats()

    async def aclose(self) -> None:
        """Close the client, stop the server's process tree (blocking: nothing else runs any more) and keep
        its log in the run directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._inner is not None:
                await self._inner.aclose()
        finally:
            self.server.stop()
            run_dir = self._run_dir() if self._run_dir is not None else None
            log = self.server.keep_in(run_dir)
            if log is not None and self.server.say is not None:
                self.server.say(f"  server log: {log}")
