"""Wire framing between the coordinator and a worker it does not share a loop with (process or Ray actor).

Owns: the message kinds, frames (4-byte big-endian length, one type byte, payload) and the two adapters
that turn a :class:`~evalscope.perf._core.Outbox` call into a frame (:class:`FrameOutbox`) and a frame back
into a :class:`~evalscope.perf._pools.Sink` call (:func:`deliver`). May import: ``perf.aggregate`` only.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from evalscope.perf.aggregate import Aggregator

# ---- messages (one type byte) ----------------------------------------------------------------------------
HELLO = b"h"  # worker -> coordinator: ready {pid, host, offset_ns}
RECORDS = b"r"  # worker -> coordinator: JSONL lines
PROGRESS = b"p"  # worker -> coordinator: small live counters
DONE = b"d"  # worker -> coordinator: stage finished {state, cpu, dispatch stats}
ERROR = b"e"  # worker -> coordinator: a traceback; the run fails
EOF = b"\x00"  # (local) the worker's connection closed
STAGE = b"s"  # coordinator -> worker: run a stage {spec}
STOP = b"x"  # coordinator -> worker: stop dispatching {abort, limit_ns}
QUIT = b"q"  # coordinator -> worker: exit

_HEADER = struct.Struct(">I")


def frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload) + 1) + kind + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One frame; raises ``asyncio.IncompleteReadError`` when the peer has gone."""
    (n,) = _HEADER.unpack(await reader.readexactly(4))
    data = await reader.readexactly(n)
    return data[:1], data[1:]


def boot_id() -> str:
    """Identifies this boot of this machine: equal boot ids share one CLOCK_MONOTONIC."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return f"{socket.gethostname()}:{os.getpid()}"  # unknown: never assume a shared clock


class FrameOutbox:
    """A worker's outbox that encodes each message as one frame for ``emit`` (socket write, actor outbox)."""

    def __init__(self, emit: Callable[[bytes, bytes], None]) -> None:
        self.emit = emit

    def records(self, lines: list[bytes]) -> None:
        self.emit(RECORDS, b"".join(lines))

    def progress(self, p: dict[str, Any]) -> None:
        self.emit(PROGRESS, orjson.dumps(p))

    def done(self, d: dict[str, Any], agg: Aggregator | None) -> None:
        d = dict(d)
        d["state"] = None if agg is None else _state_on_coordinator_clock(agg, d)
        self.emit(DONE, orjson.dumps(d, option=orjson.OPT_SERIALIZE_NUMPY))

    def error(self, exc: BaseException | str) -> None:
        self.emit(ERROR, (exc if isinstance(exc, str) else repr(exc)).encode())


def _state_on_coordinator_clock(agg: Aggregator, d: dict[str, Any]) -> dict[str, Any]:
    state = agg.to_state()
    offset = int(d.get("offset_ns") or 0)
    if offset:
        state["t0_ns"] = d["t0_ns"]
        for k in ("first_sent_ns", "last_end_ns"):
            v = state["counters"][k]
            state["counters"][k] = None if v is None else v + offset
    return state


class Sink(Protocol):
    """What the coordinator hears from core ``k`` (the same calls whatever the pool or the wire)."""

    def on_records(self, k: int, chunks: list[bytes], lines: int) -> None:
        """``chunks`` of whole JSONL lines, ``lines`` of them in all."""

    def on_progress(self, k: int, p: dict[str, Any]) -> None: ...

    def on_done(self, k: int, d: dict[str, Any], agg: Aggregator | None) -> None: ...

    def on_error(self, k: int, exc: BaseException | str) -> None: ...

    def on_exit(self, k: int) -> None: ...


def deliver(sink: Sink, k: int, kind: bytes, payload: bytes) -> None:
    """Hand one frame from worker ``k`` to the coordinator."""
    if kind == RECORDS:
        sink.on_records(k, [payload], payload.count(b"\n"))
    elif kind == PROGRESS:
        sink.on_progress(k, orjson.loads(payload))
    elif kind == DONE:
        d = orjson.loads(payload)
        state = d.pop("state", None)
        sink.on_done(k, d, None if state is None else Aggregator.from_state(state))
    elif kind == ERROR:
        sink.on_error(k, payload.decode(errors="replace"))
    elif kind == EOF:
        sink.on_exit(k)
