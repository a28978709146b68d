"""Run directories, the run manifest, per-request records and the summary on disk.

- A run gets a new directory ``<outputs-dir>/<UTC timestamp>_<name>/`` (a numeric suffix is added if it
  exists): a run never overwrites another (D4).
- ``manifest.json`` is written at start with ``status: running`` and replaced atomically (write a temporary
  file, fsync, ``os.replace``) at the end (D2).
- ``histograms.json`` (at the end) holds each stage's latency histograms (HDR, compressed): the report draws
  its distributions from them instead of recomputing them from every record.
- ``records.jsonl`` gets one line per finished request, appended in batches and handed to the OS at least
  every second (D1), so after ``kill -9`` every older record is on disk and every line parses (a line is
  written with one ``write`` call of whole lines only).

May import: ``engine.redact`` only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson

from evalscope.engine.redact import redact, scrub

FLUSH_INTERVAL_S = 0.5
HISTOGRAMS_FILE = "histograms.json"
FLUSH_LINES = 512


def make_run_dir(outputs_dir: Path, name: str | None, timestamp: bool = True) -> Path:
    """Create and return a new, unique run directory (``--no-timestamp``: without the time prefix)."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in (name or "perf"))[:64]
    outputs_dir.mkdir(parents=True, exist_ok=True)
    base = outputs_dir / (f"{stamp}_{safe}" if timestamp else safe)
    path = base
    i = 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            i += 1
            path = Path(f"{base}_{i}")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` so readers see either the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    data = orjson.dumps(
        obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    )
    with open(tmp, "wb") as f:
        f.write(data)
        f.write(b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def safe_json(obj: Any) -> Any:
    """A copy of ``obj`` fit to save: credential keys masked, registered secrets scrubbed (engine.redact)."""
    return redact(obj)


def encode_record(d: dict[str, Any], save_responses: bool = False) -> bytes:
    """One record dict as one JSONL line: texts dropped unless kept, credentials scrubbed from messages."""
    if not save_responses:
        d["text"] = None
        d["reasoning"] = None
        d["tool_calls"] = None
    err = d.get("error")
    if err and err.get("message"):
        err["message"] = scrub(err["message"])
    try:
        return orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:  # a non-string key (in a tool call...): the slower option, only then
        return orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)


#: Buffers one writev takes (POSIX guarantees 16; Linux allows 1024).
_IOV_MAX = max(16, min(1024, os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16))


def write_all(fd: int, chunks: list[bytes]) -> None:
    """Write every chunk to ``fd`` in order, with as few system calls as possible and no join.

    Why: the records of half a second of a long-stream run are MBs, and a join copies them into a fresh mapping
    (every page faulted in) inside the measuring loop; writev hands the kernel the chunks where they are. A short
    write (a signal, a full disk that frees up) is finished from where it stopped."""
    if not hasattr(os, "writev"):  # not POSIX
        data = b"".join(chunks)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return
    for i in range(0, len(chunks), _IOV_MAX):
        batch = chunks[i : i + _IOV_MAX]
        done = os.writev(fd, batch)
        total = sum(map(len, batch))
        if done == total:
            continue
        for chunk in batch:  # a short write: skip what went out, then write the rest one by one
            if done >= len(chunk):
                done -= len(chunk)
                continue
            view = memoryview(chunk)[done:]
            done = 0
            while view:
                view = view[os.write(fd, view) :]


class RecordWriter:
    """Append-only JSONL writer with batching; :meth:`maybe_flush` is cheap to call per record."""

    def __init__(self, path: Path, save_responses: bool = False) -> None:
        self.path = path
        self.save_responses = save_responses
        self._f = open(path, "ab")  # noqa: SIM115 - closed in close(); lives for the whole run
        self._buf: list[bytes] = []  # whole lines, one or many per item
        self._lines = 0  # lines in _buf
        self._last_flush = time.monotonic()
        self.written = 0

    def add(self, d: dict[str, Any]) -> None:
        """Queue one record dict (credentials are scrubbed from free text such as error messages)."""
        self._buf.append(encode_record(d, self.save_responses))
        self._lines += 1
        if len(self._buf) >= FLUSH_LINES:
            self.flush()

    def add_lines(self, chunks: list[bytes], lines: int) -> None:
        """Queue ``chunks`` of whole lines already made by :func:`encode_record` (a core's batch), ``lines`` of
        them in all (counted by whoever made them: counting here would read every byte again)."""
        if chunks:
            self._buf.extend(chunks)
            self._lines += lines
            self.maybe_flush()

    def maybe_flush(self) -> None:
        if self._buf and time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Hand buffered lines to the OS (whole lines only; writev, no join)."""
        self._last_flush = time.monotonic()
        if not self._buf or self._f.closed:
            return
        chunks, self._buf = self._buf, []
        lines, self._lines = self._lines, 0
        write_all(
            self._f.fileno(), chunks
        )  # the file object's own buffer is never used: nothing to flush first
        self.written += lines

    def close(self) -> None:
        if not self._f.closed:
            self.flush()
            try:
                os.fsync(self._f.fileno())
            except OSError:
                pass
            self._f.close()


def read_records(path: Path) -> list[dict[str, Any]]:
    """Read a records file; a torn last line is skipped, a torn middle line is an error with its number (D8)."""
    lines = path.read_bytes().split(b"\n")
    out: list[dict[str, Any]] = []
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            if i >= last - 1 and not any(x.strip() for x in lines[i + 1 :]):
                break
            raise ValueError(f"{path}:{i + 1}: torn or invalid record line") from None
    return out
