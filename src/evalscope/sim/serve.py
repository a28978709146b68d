"""Run a :class:`SimServer` as a program: ready line, optional port file, clean stop on SIGINT / SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from evalscope.sim.config import SimConfig
from evalscope.sim.server import SimServer


def write_port_file(path: str, port: int) -> None:
    """Write ``port`` atomically, so a parent polling the file never reads a half-written number."""
    tmp = Path(f"{path}.tmp{os.getpid()}")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)


async def serve(
    cfg: SimConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    port_file: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    from evalscope.sim.process import adopt_lifeline

    after = adopt_lifeline(loop, stop.set)  # started by SimProcess: die with the parent
    try:
        async with SimServer(cfg, host=host, port=port) as sim:
            if port_file:
                write_port_file(port_file, sim.port)
            if on_ready is not None:
                on_ready(sim.url)
            await stop.wait()
    finally:
        after()


def run(
    cfg: SimConfig, host: str = "127.0.0.1", port: int = 0, port_file: str | None = None, loop: str = "auto"
) -> None:
    """Blocking entry point.

    ``loop``: ``auto`` uses uvloop when installed (cheaper per event, so a higher ceiling), ``uvloop`` requires
    it, ``asyncio`` forces the standard loop (which accepts bursts of new connections faster when the server
    is already saturated).
    """

    def ready(url: str) -> None:
        print(f"evalscope sim ready: {url}", flush=True)

    coro = serve(cfg, host, port, port_file, ready)
    if loop != "asyncio" and sys.platform != "win32":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                coro.close()
                raise
        else:
            uvloop.run(coro)
            return
    asyncio.run(coro)
