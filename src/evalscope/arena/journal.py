"""Append-only JSONL journals of the arena: generated answers (one file per model) and judgments.

A line is written and flushed the moment its answer or verdict arrives, so ``kill -9`` loses only the calls
in flight. Reading tolerates a torn last line (a crash mid-write: it is dropped, and cut off before the next
append) and refuses a bad line in the middle (corruption, exit 2).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from evalscope.errors import ConfigError


def judgment_key(*parts: Any) -> str:
    """The cache key of one judgment: a digest of (judge, prompt version, question, answers, positions)."""
    return hashlib.sha256(orjson.dumps(list(parts))).hexdigest()[:32]


def read_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Entries of a journal and the byte length of its valid prefix."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    out: list[dict[str, Any]] = []
    pos = 0
    n = len(data)
    lineno = 0
    while pos < n:
        nl = data.find(b"\n", pos)
        end = n if nl < 0 else nl
        line = data[pos:end]
        lineno += 1
        if line.strip():
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                if nl < 0 or not data[nl + 1 :].strip():
                    return out, pos  # torn last line
                raise ConfigError(
                    f"journal {str(path)!r} line {lineno} is corrupt",
                    "delete the run directory or fix the line",
                ) from None
            if isinstance(obj, dict):
                out.append(obj)
        if nl < 0:
            return out, n
        pos = nl + 1
    return out, pos


class Journal:
    """One append-only journal file; :meth:`entries` are what it held when opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.entries, valid = read_lines(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.ftruncate(self._fd, valid)
        os.lseek(self._fd, 0, os.SEEK_END)

    def append(self, entry: dict[str, Any]) -> None:
        """Write one line in a single ``write`` (a kill leaves it whole or torn at the end, never interleaved)."""
        os.write(self._fd, orjson.dumps(entry) + b"\n")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
