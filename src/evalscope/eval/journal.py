"""Per-benchmark append-only sample journals (D1, D5, D8).

Every finished sample (scored or errored) is one JSON line in ``<run>/journal/<benchmark>.jsonl``, written and
flushed as it completes, so ``kill -9`` loses at most the samples in flight. Resume reads the journals back:
a later line for the same (sample id, repeat) supersedes an earlier one (an errored sample retried on resume).

Reading tolerates a torn last line (a crash mid-write: warning, and the writer truncates it before appending)
and rejects a torn line in the middle (corruption: error with the line number).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from evalscope.errors import ConfigError

log = logging.getLogger(__name__)

#: Status of a journal line: the sample was scored (done) or failed permanently this time (retried on resume).
DONE = "scored"
ERRORED = "errored"


class JournalError(ConfigError):
    """A journal file is corrupt in the middle (exit 2)."""


def _key(entry: dict[str, Any]) -> tuple[str, int]:
    return str(entry["sample_id"]), int(entry.get("repeat", 0))


def read_journal(path: Path) -> tuple[list[dict[str, Any]], int]:
    """All entries of one journal and the byte length of its valid prefix.

    A last line that does not parse (or lacks its newline and does not parse) is dropped with a warning;
    any other bad line raises :class:`JournalError` naming the line.
    """
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    entries: list[dict[str, Any]] = []
    pos = 0
    lineno = 0
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        end = n if nl < 0 else nl
        line = data[pos:end]
        lineno += 1
        is_last = nl < 0 or nl == n - 1 or not data[nl + 1 :].strip()
        if line.strip():
            try:
                obj = orjson.loads(line)
                if not isinstance(obj, dict) or "sample_id" not in obj:
                    raise ValueError("not a journal entry")
            except (orjson.JSONDecodeError, ValueError) as exc:
                if is_last:
                    log.warning("%s: ignoring torn last line %d (%s)", path, lineno, exc)
                    return entries, pos
                raise JournalError(
                    f"journal {str(path)!r} is corrupt at line {lineno}: {exc}",
                    "the file was edited or damaged; start a new run or remove that line",
                ) from None
            if nl < 0:
                # Complete JSON but no newline: the crash came right before the newline. Keep it.
                entries.append(obj)
                return entries, -1
            entries.append(obj)
        pos = end + 1
    return entries, n


def latest_entries(entries: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """(sample id, repeat) -> the last entry written for it."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for e in entries:
        out[_key(e)] = e
    return out


class JournalWriter:
    """Appends entries to one journal, one ``write`` + ``flush`` per entry (lines survive ``kill -9``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] | None = None

    def open(self) -> JournalWriter:
        _entries, valid = read_journal(self.path) if self.path.exists() else ([], 0)
        fh = open(self.path, "ab")  # noqa: SIM115 - owned by this object, closed in close()
        if valid == -1:
            fh.write(b"\n")  # a complete last entry that lacked its newline
        elif self.path.exists() and valid < fh.tell():
            fh.truncate(valid)  # drop a torn tail so the next line does not glue onto it
            fh.seek(valid)
        self._fh = fh
        return self

    def append(self, entry: dict[str, Any]) -> bytes:
        """Write one entry as a line and flush it; returns the bytes written (without the newline)."""
        fh = self._fh
        if fh is None:
            raise RuntimeError("journal not open")
        data = orjson.dumps(
            entry, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=_default
        )
        fh.write(data + b"\n")
        fh.flush()
        return data

    def sync(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            self._fh.close()
            self._fh = None

    def __enter__(self) -> JournalWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _default(obj: Any) -> Any:
    if isinstance(obj, set | frozenset | tuple):
        return sorted(obj, key=str) if isinstance(obj, set | frozenset) else list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def iter_journals(run_dir: Path) -> Iterator[tuple[str, Path]]:
    """(benchmark name, path) for every journal in a run directory."""
    jdir = run_dir / "journal"
    if not jdir.is_dir():
        return
    for p in sorted(jdir.glob("*.jsonl")):
        yield p.stem, p
