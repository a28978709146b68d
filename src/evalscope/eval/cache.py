"""Response cache for ``--use-cache DIR`` (D9).

The key is sha256 over the model, the endpoint identity and the full request body (canonical JSON, plus the
repeat index so that repeated generations stay distinct). Only successful responses are stored; errors never
are. Storage is an append-only JSONL file ``DIR/responses.jsonl`` (last entry per key wins, a torn last line
is ignored), loaded once at start.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import IO, Any

import orjson

log = logging.getLogger(__name__)

CACHE_FILE = "responses.jsonl"


def cache_key(model: str, endpoint: str, body: dict[str, Any], repeat: int = 0) -> str:
    """sha256 of model + endpoint + canonical body (+ repeat index)."""
    h = hashlib.sha256()
    h.update(model.encode())
    h.update(b"\x00")
    h.update(endpoint.encode())
    h.update(b"\x00")
    h.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    h.update(b"\x00")
    h.update(str(repeat).encode())
    return h.hexdigest()


class ResponseCache:
    """Key -> stored response (``text``, ``reasoning``, ``finish_reason``, ``usage``)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / CACHE_FILE
        self._data: dict[str, dict[str, Any]] = {}
        self._fh: IO[bytes] | None = None
        self.hits = 0
        self.misses = 0

    def open(self) -> ResponseCache:
        self.dir.mkdir(parents=True, exist_ok=True)
        valid_len = 0
        if self.path.exists():
            raw = self.path.read_bytes()
            for i, line in enumerate(raw.split(b"\n")):
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                    self._data[str(obj["key"])] = obj
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s: skipping unreadable cache line %d", self.path, i + 1)
            valid_len = raw.rfind(b"\n") + 1
        fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        if fh.tell() > valid_len:
            fh.truncate(valid_len)
        self._fh = fh
        return self

    def get(self, key: str) -> dict[str, Any] | None:
        hit = self._data.get(key)
        if hit is None:
            self.misses += 1
        else:
            self.hits += 1
        return hit

    def put(self, key: str, value: dict[str, Any]) -> None:
        entry = {"key": key, **value}
        self._data[key] = entry
        if self._fh is not None:
            self._fh.write(orjson.dumps(entry) + b"\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __len__(self) -> int:
        return len(self._data)
