"""Incremental Server-Sent Events decoder: bytes in, ``(event, data)`` pairs out.

Works on bytes so a UTF-8 character split across two reads is never decoded half-way (only whole lines are
handed on, and JSON parsing happens on bytes). Handles LF, CRLF and lone CR line ends (a CR at the end of
one read may be the first half of a CRLF), several ``data:`` lines per event (joined with LF), ``:`` comments
(keep-alives), ``event:`` lines, and lines of many MiB without quadratic copying: an incomplete line is kept
as a list of parts and joined once, when its end arrives.
"""

from __future__ import annotations

from evalscope.errors import EvalscopeError

_LF = 10
_CR = 13


class SSEError(EvalscopeError):
    """The stream broke the SSE framing (an event larger than the cap)."""


class SSEDecoder:
    """Feed raw bytes with :meth:`feed`; get completed events as ``(event_name or None, data)``.

    ``data`` is the bytes of all ``data:`` lines of the event joined by ``\\n``. ``max_event_bytes`` bounds
    memory for a misbehaving server.
    """

    __slots__ = ("_data", "_event", "_parts", "_parts_len", "_pending_cr", "max_event_bytes")

    def __init__(self, max_event_bytes: int = 256 * 1024 * 1024) -> None:
        self._parts: list[bytes] = []
        self._parts_len = 0
        self._pending_cr = False
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self.max_event_bytes = max_event_bytes

    def single(self, chunk: bytes) -> bytes | None:
        """The common read, exactly one whole ``data:`` event from a clean state: its payload (what
        :meth:`feed` would return for it, at a fraction of the cost); otherwise ``None`` and nothing consumed."""
        n = len(chunk)
        if (
            chunk[:5] == b"data:"
            and chunk.find(b"\n") == n - 2
            and chunk[-1] == _LF
            and not self._parts
            and not self._data
            and not self._pending_cr
            and self._event is None
            and chunk.find(b"\r") < 0  # (find is memchr; ``in`` is a general search, twice the cost)
        ):
            return chunk[6 : n - 2] if chunk[5] == 32 else chunk[5 : n - 2]
        return None

    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        """Consume one read; return the events it completed (often one, sometimes none or several)."""
        one = self.single(chunk)
        if one is not None:
            return [(None, one)]
        return self.feed_lines(chunk)

    def feed_lines(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        """:meth:`feed` without the :meth:`single` shortcut, for a caller that has just tried it."""
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            if chunk[-1] == _CR:
                # Hold the decision: the LF of a CRLF may arrive in the next read.
                self._pending_cr = True
                chunk = chunk[:-1].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + b"\n"
            else:
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            if chunk:
                self._parts.append(chunk)
                self._parts_len += len(chunk)
                if self._parts_len > self.max_event_bytes:
                    raise SSEError(f"SSE line larger than {self.max_event_bytes} bytes")
            return []
        if self._parts:
            self._parts.append(chunk)
            chunk = b"".join(self._parts)
            self._parts = []
            self._parts_len = 0
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if tail:
            self._parts.append(tail)
            self._parts_len = len(tail)
        out: list[tuple[bytes | None, bytes]] = []
        for line in lines:
            if not line:
                if self._data:
                    data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                    out.append((self._event, data))
                    self._data = []
                self._event = None
                continue
            if line[:5] == b"data:":
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[0] == 58:  # ':' comment / keep-alive
                continue
            else:
                name, sep, value = line.partition(b":")
                if sep and value[:1] == b" ":
                    value = value[1:]
                if name == b"event":
                    self._event = value
                elif name == b"data":  # "data" with no colon: an empty data line
                    self._data.append(b"")
                # id / retry / unknown fields carry nothing we measure.
        return out

    def close(self) -> list[tuple[bytes | None, bytes]]:
        """End of body: dispatch an event whose terminating blank line never came (lenient servers)."""
        out: list[tuple[bytes | None, bytes]] = []
        if self._parts:
            out.extend(self.feed(b"\n"))
        if self._data:
            out.append((self._event, b"\n".join(self._data)))
            self._data = []
        self._event = None
        return out
