"""Small I/O helpers shared by the sandbox launchers."""

from __future__ import annotations

import asyncio
import os


async def read_capped(fd: int, cap: int, buf: bytearray, on_overflow: asyncio.Event) -> None:
    """Read pipe ``fd`` into ``buf`` up to ``cap`` bytes; past the cap set ``on_overflow`` and stop reading
    (closing our end, so the writer gets EPIPE). Always closes the pipe."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 16)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            room = cap - len(buf)
            if room > 0:
                buf += chunk[:room]
            if len(chunk) > room:
                on_overflow.set()
                return
    finally:
        transport.close()
