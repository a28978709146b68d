"""Pools of :class:`~evalscope.perf._core.WorkerCore`: how the coordinator starts cores and hears from them.

One :class:`Pool` protocol, three kinds: :class:`LocalPool` (one core on the coordinator's own loop: the
in-process run), :class:`ProcessPool` (``--workers N``: ``spawn`` processes over Unix socket pairs, a shared
request counter) and ``ray_backend.RayPool`` (``--ray``). Whatever the kind, the coordinator receives the
same calls on its :class:`~evalscope.perf._wire.Sink`. Also here: how many workers ``--workers auto`` means.

Worker processes ignore SIGINT (the coordinator decides), exit when the coordinator's socket closes and, on
Linux, get SIGTERM when it dies, so no process is left behind.

May import: ``perf._core``, ``perf._wire``, ``perf.aggregate``, ``engine.session`` (lazily), ``errors``;
Never ``perf.ray_backend``, the coordinator or the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any

import orjson

from evalscope.errors import EvalscopeError
from evalscope.perf._core import SharedCounter, WorkerCore
from evalscope.perf._wire import (
    EOF,
    ERROR,
    HELLO,
    QUIT,
    STAGE,
    STOP,
    FrameOutbox,
    Sink,
    deliver,
    frame,
    read_frame,
)
from evalscope.perf.aggregate import Aggregator

#: ``auto``: streamed events per second one worker's event loop handles comfortably, and parallel streams.
EVENTS_PER_WORKER = 40_000
PARALLEL_PER_WORKER = 64


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(cfg: Any, local_simulator: bool) -> tuple[int, str]:
    """Number of workers and how it was chosen (printed in the header).

    ``auto``: ``ceil(max(max parallel / 64, expected events/s / 40,000))``, where expected events/s is
    ``--rate`` x ``--max-tokens`` (open loop only; closed loop is sized by its parallel streams), clamped to
    [1, usable CPUs], minus one CPU when the built-in simulator runs on this machine. ``--ray`` without
    ``--workers``: 2 actors.
    """
    if cfg.workers != "auto":
        if cfg.ray is not None and "workers" not in cfg.model_fields_set:
            return 2, "2 Ray actors (default with --ray; --workers N to change)"
        n = int(cfg.workers)
        return n, f"{n} (--workers)"
    cpus = usable_cpus()
    budget = max(1, cpus - 1 if local_simulator else cpus)
    max_par = max(cfg.parallel)
    need = max_par / PARALLEL_PER_WORKER
    if cfg.rate is not None:
        need = max(need, cfg.rate * (cfg.max_tokens or 256) / EVENTS_PER_WORKER)
    n = max(1, min(budget, math.ceil(need)))
    why = (
        f"auto: ceil(max(parallel {max_par}/{PARALLEL_PER_WORKER}"
        + (f", rate x max_tokens/{EVENTS_PER_WORKER}" if cfg.rate is not None else "")
        + f")) capped at {budget} usable CPU{'s' if budget != 1 else ''}"
        + (" (one left for the simulator)" if local_simulator else "")
    )
    return n, f"{n} ({why})"


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` integers differing by at most one (the larger first)."""
    q, r = divmod(total, parts)
    return [q + (1 if k < r else 0) for k in range(parts)]


class Pool:
    """How the coordinator talks to its cores."""

    backend = "processes"
    #: True when the one core shares the coordinator's loop: it starts a stage as soon as it is ready
    #: (after opening its connections) instead of at a common start time.
    local = False

    def __init__(self, n: int) -> None:
        self.n = n
        self.pids: list[int] = []
        self.hellos: list[dict[str, Any]] = []

    @property
    def shared_counter(self) -> bool:
        return False

    @property
    def local_pids(self) -> list[int]:
        """Worker PIDs on this machine other than ours (signalled on a second Ctrl-C)."""
        return list(self.pids)

    def reset_counter(self) -> None: ...

    async def start(self, setups: list[dict[str, Any]], sink: Sink) -> None:
        raise NotImplementedError

    def start_stage(self, k: int, spec: dict[str, Any]) -> None:
        raise NotImplementedError

    def stop(self, abort: bool, limit_ns: int | None) -> None:
        raise NotImplementedError

    def cut_stage(self) -> None:
        """End the running stage on every core now (an over-saturated probe); Ray actors ignore it."""

    def flush(self) -> None:
        """Hand over the records the cores hold now, where that is possible synchronously (second Ctrl-C)."""

    async def close(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """Synchronous last resort (errors, second Ctrl-C): end every worker now."""


class _DirectOutbox:
    """A local core's outbox: each message is a direct call on the coordinator (no encoding)."""

    def __init__(self, sink: Sink, k: int) -> None:
        self._sink = sink
        self._k = k

    def records(self, lines: list[bytes]) -> None:
        self._sink.on_records(self._k, lines, len(lines))

    def progress(self, p: dict[str, Any]) -> None:
        self._sink.on_progress(self._k, p)

    def done(self, d: dict[str, Any], agg: Aggregator | None) -> None:
        self._sink.on_done(self._k, d, agg)

    def error(self, exc: BaseException | str) -> None:
        self._sink.on_error(self._k, exc)


class LocalPool(Pool):
    """One core on the coordinator's loop, sharing its client, dataset and tokenizer: the in-process run."""

    backend = "in-process"
    local = True

    def __init__(self) -> None:
        super().__init__(1)
        self._core: WorkerCore | None = None
        self._task: asyncio.Task[None] | None = None
        self._sink: Sink | None = None

    @property
    def local_pids(self) -> list[int]:
        return []  # that is us

    async def start(self, setups: list[dict[str, Any]], sink: Sink) -> None:
        self._sink = sink
        self._core = WorkerCore(setups[0], _DirectOutbox(sink, 0), None)
        self.hellos = [await self._core.open()]

    def start_stage(self, k: int, spec: dict[str, Any]) -> None:
        assert self._core is not None
        self._task = asyncio.get_running_loop().create_task(self._core.run_stage_raising(spec))
        self._task.add_done_callback(self._stage_ended)

    def _stage_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self._sink is not None:
            self._sink.on_error(0, task.exception() or RuntimeError("stage failed"))  # raised as it is

    def stop(self, abort: bool, limit_ns: int | None) -> None:
        if self._core is not None:
            self._core.stop(abort, limit_ns)

    def cut_stage(self) -> None:
        if self._core is not None:
            self._core.cut_stage()

    def flush(self) -> None:
        if self._core is not None:
            self._core.flush()

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self.stop(True, None)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._task
        if self._core is not None:
            await self._core.close()
            self._core = None

    def kill(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


# ---- worker processes -----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the coordinator dies (belt and braces next to the socket EOF)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def process_main(worker: int, sock: socket.socket, counter: Any, setup: dict[str, Any]) -> None:
    """Entry point of a worker process (spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides; Ctrl-C reaches the whole group
    _die_with_parent()
    from evalscope.engine.session import run

    try:
        run(_process_async(worker, sock, SharedCounter(counter), setup))
    except BaseException:  # noqa: BLE001 - a worker must exit, never linger
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


async def _process_async(
    worker: int, sock: socket.socket, counter: SharedCounter, setup: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)

    def emit(kind: bytes, payload: bytes) -> None:
        if not writer.is_closing():
            writer.write(frame(kind, payload))

    async def drainer() -> None:
        while True:
            await asyncio.sleep(0.05)
            await writer.drain()

    core = WorkerCore(setup, FrameOutbox(emit), counter)
    drain_task = asyncio.get_running_loop().create_task(drainer())
    stage_task: asyncio.Task[None] | None = None
    try:
        try:
            hello = await core.open()
        except Exception:  # noqa: BLE001 - reported, then exit
            emit(ERROR, traceback.format_exc().encode())
            return
        emit(HELLO, orjson.dumps(hello))
        while True:
            try:
                kind, payload = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                core.stop(True, None)  # the coordinator is gone: stop everything
                break
            if kind == STAGE:
                stage_task = asyncio.get_running_loop().create_task(core.run_stage(orjson.loads(payload)))
            elif kind == STOP:
                d = orjson.loads(payload)
                if d.get("cut"):
                    core.cut_stage()
                else:
                    core.stop(bool(d["abort"]), d.get("limit_ns"))
            elif kind == QUIT:
                break
        if stage_task is not None:
            await stage_task
    finally:
        await core.close()
        drain_task.cancel()
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()
            await writer.wait_closed()


class ProcessPool(Pool):
    """N ``spawn`` processes, each connected by a Unix socket pair."""

    backend = "processes"

    def __init__(self, n: int) -> None:
        super().__init__(n)
        import multiprocessing as mp

        self._ctx = mp.get_context("spawn")
        self._counter = self._ctx.Value("q", 0)
        self._procs: list[Any] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._readers: list[asyncio.Task[None]] = []

    @property
    def shared_counter(self) -> bool:
        return True

    def reset_counter(self) -> None:
        SharedCounter(self._counter).reset()

    async def start(self, setups: list[dict[str, Any]], sink: Sink) -> None:
        hello: list[asyncio.Future[dict[str, Any]]] = []
        loop = asyncio.get_running_loop()
        for k, setup in enumerate(setups):
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            p = self._ctx.Process(
                target=process_main,
                args=(k, theirs, self._counter, setup),
                name=f"evalscope-perf-worker-{k}",
                daemon=True,
            )
            p.start()
            theirs.close()
            self._procs.append(p)
            self.pids.append(int(p.pid or 0))
            reader, writer = await asyncio.open_unix_connection(sock=mine)
            self._writers.append(writer)
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            hello.append(fut)
            self._readers.append(loop.create_task(self._read(k, reader, sink, fut)))
        self.hellos = list(await asyncio.wait_for(asyncio.gather(*hello), 120))

    async def _read(
        self, k: int, reader: asyncio.StreamReader, sink: Sink, hello: asyncio.Future[dict[str, Any]]
    ) -> None:
        while True:
            try:
                kind, payload = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                kind, payload = EOF, b""
            if not hello.done():
                if kind == HELLO:
                    hello.set_result(orjson.loads(payload))
                    continue
                if kind == ERROR:
                    hello.set_exception(
                        EvalscopeError(
                            f"perf worker {k} failed to start: {payload.decode(errors='replace').strip()[-2000:]}"
                        )
                    )
                else:
                    hello.set_exception(
                        EvalscopeError(
                            f"perf worker {k} exited before it was ready (its error is on stderr above)",
                            "from a script, call run_perf(..., workers=N) under if __name__ == '__main__': "
                            "worker processes are started with spawn, which imports the main module",
                        )
                    )
                return
            deliver(sink, k, kind, payload)
            if kind == EOF:
                return

    def _send(self, k: int, kind: bytes, payload: bytes) -> None:
        w = self._writers[k]
        if not w.is_closing():
            w.write(frame(kind, payload))

    def start_stage(self, k: int, spec: dict[str, Any]) -> None:
        self._send(k, STAGE, orjson.dumps(spec))

    def stop(self, abort: bool, limit_ns: int | None) -> None:
        payload = orjson.dumps({"abort": abort, "limit_ns": limit_ns})
        for k in range(len(self._writers)):
            self._send(k, STOP, payload)

    def cut_stage(self) -> None:
        payload = orjson.dumps({"cut": True})
        for k in range(len(self._writers)):
            self._send(k, STOP, payload)

    async def close(self) -> None:
        for k in range(len(self._writers)):
            self._send(k, QUIT, b"")
        deadline = time.monotonic() + 10.0
        while any(p.is_alive() for p in self._procs) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        self.kill()
        for t in self._readers:
            t.cancel()
        for w in self._writers:
            with contextlib.suppress(Exception):
                w.close()

    def kill(self) -> None:
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join(2.0)
            if p.is_alive():
                p.kill()
                p.join(2.0)
