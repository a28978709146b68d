"""``--ray [ADDRESS]``: the perf workers as Ray actors, on one machine or across a cluster.

Each actor runs the same :class:`evalscope.perf._core.WorkerCore` as a worker process, on the actor's own
event loop (an async actor), with the same schedule, records, aggregator states and merge. Differences from
worker processes, by necessity:

- messages are not pushed over a socket: each actor keeps an outbox and the coordinator polls every actor
  about ten times a second (``poll`` returns record batches, progress and the stage state);
- there is no shared memory across machines, so closed-loop request indices are pre-partitioned
  (``i % W == k``, exact totals; the tail of a stage is less balanced than with the shared counter);
- an actor on another machine has another monotonic clock: it estimates the offset to the coordinator's clock
  once at set-up (one-way, so off by the RPC latency) and writes times on the coordinator's clock; actors on
  the coordinator's machine (same boot id) share its clock exactly.

``ray`` is imported only here, only with ``--ray``; without it the run stops with one line naming the extra.
``ray.init`` is called only when Ray is not initialised yet (a local instance when no ADDRESS is given), and
then shut down at the end of the run; an instance the caller started is left to the caller.

May import: ``perf._core``, ``perf._pools``, ``perf._wire``, ``errors``; ``ray`` lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from evalscope.errors import ConfigError, EvalscopeError
from evalscope.perf._core import WorkerCore
from evalscope.perf._pools import Pool, usable_cpus
from evalscope.perf._wire import FrameOutbox, Sink, deliver

#: Seconds to wait for every actor to be placed and ready (a cluster without free CPUs never places them).
READY_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.1


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs the Ray extra, which is not installed", 'pip install "evalscope[ray]"'
        ) from None
    return ray


class RayWorker:
    """The actor: a :class:`WorkerCore` plus an outbox the coordinator polls."""

    def __init__(self) -> None:
        self._core: WorkerCore | None = None
        self._outbox: list[tuple[bytes, bytes]] = []
        self._task: asyncio.Task[None] | None = None

    def _emit(self, kind: bytes, payload: bytes) -> None:
        self._outbox.append((kind, payload))

    async def setup(self, setup: dict[str, Any]) -> dict[str, Any]:
        self._core = WorkerCore(setup, FrameOutbox(self._emit), None)
        return await self._core.open()

    async def start_stage(self, spec: dict[str, Any]) -> None:
        assert self._core is not None
        self._task = asyncio.get_running_loop().create_task(self._core.run_stage(spec))

    async def stop(self, abort: bool, limit_ns: int | None) -> None:
        if self._core is not None:
            self._core.stop(abort, limit_ns)

    async def poll(self) -> list[tuple[bytes, bytes]]:
        out, self._outbox = self._outbox, []
        return out

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            if self._core is not None:
                self._core.stop(True, None)
            with contextlib.suppress(Exception):
                await self._task
        if self._core is not None:
            await self._core.close()
            self._core = None


class RayPool(Pool):
    """``n`` :class:`RayWorker` actors (one CPU each, spread over the cluster's nodes)."""

    backend = "ray"

    def __init__(self, n: int, address: str | None) -> None:
        super().__init__(n)
        self._ray = import_ray()
        self.address = None if address in (None, "", "local") else address
        self._owns = False
        self._actors: list[Any] = []
        self._poller: asyncio.Task[None] | None = None

    @property
    def local_pids(self) -> list[int]:
        return []  # actors may live on other machines: never signalled by PID from here

    async def start(self, setups: list[dict[str, Any]], sink: Sink) -> None:
        ray = self._ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "address": self.address,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
            }
            if self.address is None:
                # a new local instance: enough CPUs for the actors, no dashboard
                kwargs.update(num_cpus=max(self.n, usable_cpus()), include_dashboard=False)
            ray.init(**kwargs)  # in the main thread (Ray installs its handlers there); before any timing
            self._owns = True
        actor_cls = ray.remote(num_cpus=1, max_concurrency=64)(RayWorker)
        self._actors = [
            actor_cls.options(name=None, scheduling_strategy="SPREAD").remote() for _ in range(self.n)
        ]
        refs = [a.setup.remote(s) for a, s in zip(self._actors, setups, strict=True)]
        try:
            self.hellos = list(await asyncio.to_thread(ray.get, refs, timeout=READY_TIMEOUT_S))
        except ray.exceptions.GetTimeoutError:
            cpus = ray.cluster_resources().get("CPU", 0)
            raise EvalscopeError(
                f"Ray could not start {self.n} perf actors within {READY_TIMEOUT_S:g} s "
                f"(the cluster has {cpus:g} CPUs; each actor needs 1)",
                "use fewer --workers or a larger cluster",
            ) from None
        self.pids = [int(h["pid"]) for h in self.hellos]
        self._poller = asyncio.get_running_loop().create_task(self._poll_loop(sink))

    async def _poll_loop(self, sink: Sink) -> None:
        ray = self._ray
        while True:
            refs = [a.poll.remote() for a in self._actors]
            for k, ref in enumerate(refs):
                try:
                    msgs = await asyncio.to_thread(ray.get, ref)
                except Exception as exc:  # noqa: BLE001 - an actor died: the run fails with its reason
                    sink.on_error(k, f"Ray actor {k}: {type(exc).__name__}: {exc}")
                    return
                for kind, payload in msgs:
                    deliver(sink, k, kind, payload)
            await asyncio.sleep(POLL_INTERVAL_S)

    def start_stage(self, k: int, spec: dict[str, Any]) -> None:
        self._actors[k].start_stage.remote(spec)

    def stop(self, abort: bool, limit_ns: int | None) -> None:
        for a in self._actors:
            a.stop.remote(abort, limit_ns)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
            self._poller = None
        if self._actors:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._ray.get, [a.close.remote() for a in self._actors], timeout=30.0)
        self.kill()

    def kill(self) -> None:
        ray = self._ray
        for a in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(a)
        self._actors = []
        if self._owns and ray.is_initialized():
            ray.shutdown()
            self._owns = False
