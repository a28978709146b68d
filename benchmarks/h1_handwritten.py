"""A hand-written incremental HTTP/1.1 response parser: the candidate that lost to ``httptools``.

Kept here (not in src) so that ``bench_h1_parser.py`` can repeat the measurement that chose ``httptools`` for
the engine's built-in transport (:mod:`evalscope.engine.h1`). It is written the way the transport would use
it: ``feed`` returns the body bytes a read carried (chunk framing removed, pieces joined), with a fast path
for a read that is exactly one chunk frame (one ``find``, one ``int(.., 16)``, one slice).

Handles: a status line and headers split across reads, ``1xx`` interim responses (skipped), bodies framed by
``Content-Length``, by chunked encoding (extensions and trailers ignored) or by the connection's close, and
bodiless responses (``HEAD``, ``204``, ``304``). Limits bound memory against a hostile server.
"""

from __future__ import annotations

_HEAD = 0
_LENGTH = 1
_CHUNK_SIZE = 2
_CHUNK_DATA = 3
_CHUNK_CRLF = 4
_TRAILERS = 5
_UNTIL_CLOSE = 6
_DONE = 7

MAX_HEAD_BYTES = 1024 * 1024
_MAX_SIZE_LINE = 4096


class HTTPParseError(Exception):
    """The response broke HTTP/1.1 framing."""


class ResponseParser:
    """One response at a time; :meth:`reset` before the next on the same connection."""

    __slots__ = (
        "_buf",
        "_left",
        "_state",
        "complete",
        "headers",
        "keep_alive",
        "reason",
        "status",
        "version",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._state = _HEAD
        self._buf = b""
        self._left = 0
        self.status = 0
        self.reason = ""
        self.version = "1.1"
        self.headers: dict[str, str] = {}
        self.keep_alive = True
        self.complete = False

    @property
    def headers_done(self) -> bool:
        return self._state != _HEAD

    @property
    def until_close(self) -> bool:
        """The body is framed by the connection's close (no length, not chunked)."""
        return self._state == _UNTIL_CLOSE

    def feed(self, data: bytes, head_only: bool = False) -> bytes:
        """Consume one read; return the body bytes it carried. ``complete`` turns True at the message end.

        ``head_only``: the request was a ``HEAD`` (a ``Content-Length`` then announces no body).
        Bytes after the end of the message are dropped and the connection marked not reusable.
        """
        if self._state == _HEAD:
            if self._buf:
                data = self._buf + data
                self._buf = b""
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HEAD_BYTES:
                    raise HTTPParseError(f"response head larger than {MAX_HEAD_BYTES} bytes")
                self._buf = data
                return b""
            self._parse_head(data[:end], head_only)
            data = data[end + 4 :]
            if self._state == _HEAD:  # an interim 1xx response: parse the next head
                return self.feed(data, head_only) if data else b""
            if not data:
                return b""
        state = self._state
        if state == _CHUNK_SIZE and not self._buf:
            # Fast path: a read that is exactly one or more whole chunk frames (the SSE norm).
            pos = data.find(b"\r\n")
            if pos > 0:
                try:
                    size = int(data[:pos], 16)
                except ValueError:
                    size = -1
                end = pos + 2 + size
                if size > 0 and len(data) == end + 2 and data[end:] == b"\r\n":
                    return data[pos + 2 : end]
        if state == _LENGTH:
            left = self._left
            if len(data) < left:
                self._left = left - len(data)
                return data
            if len(data) > left:
                self.keep_alive = False
                data = data[:left]
            self._left = 0
            self._state = _DONE
            self.complete = True
            return data
        if state == _UNTIL_CLOSE:
            return data
        if state == _DONE:
            self.keep_alive = False  # bytes nobody asked for: the connection is not in a known state
            return b""
        return self._chunked(data)

    def _chunked(self, data: bytes) -> bytes:
        if self._buf:
            data = self._buf + data
            self._buf = b""
        out: list[bytes] = []
        pos = 0
        n = len(data)
        state = self._state
        while pos < n:
            if state == _CHUNK_SIZE:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > _MAX_SIZE_LINE:
                        raise HTTPParseError("chunk size line too long")
                    self._buf = data[pos:]
                    break
                line = data[pos:eol]
                semi = line.find(b";")
                if semi >= 0:
                    line = line[:semi]
                try:
                    size = int(line.strip(), 16)
                except ValueError:
                    raise HTTPParseError(f"bad chunk size line {data[pos:eol][:40]!r}") from None
                if size < 0:
                    raise HTTPParseError(f"bad chunk size line {data[pos:eol][:40]!r}")
                pos = eol + 2
                if size == 0:
                    state = _TRAILERS
                else:
                    self._left = size
                    state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                take = min(self._left, n - pos)
                out.append(data[pos : pos + take])
                pos += take
                self._left -= take
                if self._left == 0:
                    state = _CHUNK_CRLF
                    self._left = 2
            elif state == _CHUNK_CRLF:
                # the CRLF after a chunk's data may itself be split across reads
                while self._left and pos < n:
                    want = b"\r" if self._left == 2 else b"\n"
                    if data[pos : pos + 1] != want:
                        raise HTTPParseError("chunk data not followed by CRLF")
                    pos += 1
                    self._left -= 1
                if self._left == 0:
                    state = _CHUNK_SIZE
            elif state == _TRAILERS:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > MAX_HEAD_BYTES:
                        raise HTTPParseError("chunked trailers too long")
                    self._buf = data[pos:]
                    break
                line_empty = eol == pos
                pos = eol + 2
                if line_empty:
                    state = _DONE
                    self.complete = True
                    if pos < n:
                        self.keep_alive = False
                    break
            else:  # _DONE
                self.keep_alive = False
                break
        self._state = state
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)

    def _parse_head(self, head: bytes, head_only: bool) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0]
        if not status_line.startswith(b"HTTP/"):
            raise HTTPParseError(f"not an HTTP response: {status_line[:60]!r}")
        parts = status_line.split(b" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            raise HTTPParseError(f"bad status line {status_line[:60]!r}") from None
        if not 100 <= status <= 999:
            raise HTTPParseError(f"bad status line {status_line[:60]!r}")
        if 100 <= status < 200 and status != 101:
            return  # interim response (100 Continue, 103 Early Hints): the real one follows
        self.status = status
        self.reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
        self.version = parts[0][5:].decode("latin-1")
        headers = self.headers
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name[-1:] in (b" ", b"\t"):
                raise HTTPParseError(f"bad header line {line[:60]!r}")
            key = name.decode("latin-1").lower()
            val = value.strip().decode("latin-1")
            old = headers.get(key)
            headers[key] = val if old is None else f"{old}, {val}"
        conn = headers.get("connection", "").lower()
        if self.version == "1.0":
            self.keep_alive = "keep-alive" in conn
        elif "close" in conn:
            self.keep_alive = False
        te = headers.get("transfer-encoding")
        if head_only or status in (204, 304):
            self._state = _DONE
            self.complete = True
        elif te is not None:
            if te.lower().rsplit(",", 1)[-1].strip() != "chunked":
                self._state = _UNTIL_CLOSE
                self.keep_alive = False
            else:
                self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            cl = headers["content-length"]
            if "," in cl:  # the same length repeated is tolerated; different ones are not
                vals = {v.strip() for v in cl.split(",")}
                if len(vals) != 1:
                    raise HTTPParseError(f"conflicting Content-Length {cl[:60]!r}")
                cl = vals.pop()
            if not cl.isdigit():
                raise HTTPParseError(f"bad Content-Length {cl[:60]!r}")
            self._left = int(cl)
            if self._left == 0:
                self._state = _DONE
                self.complete = True
            else:
                self._state = _LENGTH
        else:
            self._state = _UNTIL_CLOSE
            self.keep_alive = False

    def eof(self) -> bool:
        """The connection closed: True when that ends the message properly (a body framed by the close)."""
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
            self.complete = True
            return True
        return self._state == _DONE
