"""File-backed prompt datasets: openqa, longalpaca, line_by_line, sharegpt, custom.

openqa and longalpaca without ``--dataset-path`` read upstream's file, fetched from the hub into the cache
(:mod:`evalscope.perf.datasets.hub`).

Files are read and validated when the dataset is built (before any request), so a missing, empty, badly
encoded or malformed file stops the run with one line naming the file and the line number. Prompts are then
served in file order, cycling when a run needs more requests than the file has rows. The prompt-length
filters (``--min-prompt-length`` / ``--max-prompt-length``, tokens) apply to every format.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from evalscope.errors import DatasetError
from evalscope.perf.datasets.base import DatasetOptions, PerfDataset, Prompt

if TYPE_CHECKING:
    from evalscope.perf.tokenizer import Tokenizer


def _read_text(path: Path) -> str:
    if not path.exists():
        raise DatasetError(f"dataset file {str(path)!r} not found", "check --dataset-path")
    if not path.is_file():
        raise DatasetError(f"dataset path {str(path)!r} is not a file", "pass a file to --dataset-path")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            "convert the file to UTF-8",
        ) from None
    if not text.strip():
        raise DatasetError(f"dataset file {str(path)!r} is empty", "pass a file with at least one prompt")
    return text


def _jsonl(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})",
                "each line must be one JSON object",
            ) from None


def _json_or_jsonl(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """A JSON array (line numbers of each element are approximate: the array's line) or JSONL."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(data, list):
            raise DatasetError(f"{path}:1: expected a JSON array of objects")
        for i, row in enumerate(data):
            yield i + 1, row
        return
    yield from _jsonl(path, text)


class FileDataset(PerfDataset):
    """Base of file datasets: ``_rows`` yields (line number, Prompt or None to skip)."""

    needs_path: ClassVar[bool] = True
    item_name: ClassVar[str] = "row"
    #: fetched from the hub into the cache when no --dataset-path is given (perf/datasets/hub.py)
    from_hub: ClassVar[bool] = False

    def __init__(self, config: DatasetOptions, tokenizer: Tokenizer) -> None:
        super().__init__(config, tokenizer)
        if config.dataset_path is not None:
            self.path = Path(config.dataset_path)
        elif self.from_hub:
            from evalscope.perf.datasets.hub import hub_file

            self.path = hub_file(config.dataset)
        else:
            raise DatasetError(f"--dataset {config.dataset} needs --dataset-path FILE")
        text = _read_text(self.path)
        lo = config.min_prompt_length or 0
        hi = config.max_prompt_length
        self.rows: list[Prompt] = []
        self.total_rows = 0
        for lineno, prompt in self._rows(text):
            self.total_rows += 1
            if prompt is None:
                continue
            n = tokenizer.count(_prompt_text(prompt))
            if n < lo or (hi is not None and n > hi):
                continue
            prompt.prompt_tokens = n
            if prompt.max_tokens is None:
                prompt.max_tokens = config.max_tokens
            _ = lineno
            self.rows.append(prompt)
        if self.total_rows == 0:
            raise DatasetError(f"dataset file {str(self.path)!r} has no {self.item_name}s")
        if not self.rows:
            raise DatasetError(
                f"no prompt in {str(self.path)!r} passes the length filter "
                f"[{lo}, {hi if hi is not None else 'inf'}] tokens",
                "widen --min-prompt-length / --max-prompt-length",
            )

    def _rows(self, text: str) -> Iterator[tuple[int, Prompt | None]]:
        raise NotImplementedError

    def prompts(self) -> Iterator[Prompt]:
        rows = self.rows
        while True:
            yield from rows

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "rows": self.total_rows, "used": len(self.rows)}

    def _field(self, lineno: int, row: Any, name: str) -> str:
        if not isinstance(row, dict):
            raise DatasetError(f"{self.path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        value = row.get(name)
        if not isinstance(value, str):
            raise DatasetError(
                f"{self.path}:{lineno}: missing string field {name!r}",
                f"--dataset {self.config.dataset} rows need {name!r}",
            )
        return value


def _prompt_text(p: Prompt) -> str:
    if p.prompt is not None:
        return p.prompt
    return "\n".join(str(m.get("content", "")) for m in p.messages or [] if isinstance(m, dict))


class OpenQADataset(FileDataset):
    """JSONL with a ``question`` field; without --dataset-path, upstream's HC3-Chinese ``open_qa.jsonl``."""

    needs_path: ClassVar[bool] = False
    from_hub: ClassVar[bool] = True

    def _rows(self, text: str) -> Iterator[tuple[int, Prompt | None]]:
        for lineno, row in _jsonl(self.path, text):
            yield lineno, Prompt(prompt=self._field(lineno, row, "question"))


class LongAlpacaDataset(FileDataset):
    """JSON array or JSONL with an ``instruction`` field (filtered by length); without --dataset-path,
    upstream's ``LongAlpaca-12k.json``."""

    needs_path: ClassVar[bool] = False
    from_hub: ClassVar[bool] = True

    def _rows(self, text: str) -> Iterator[tuple[int, Prompt | None]]:
        for lineno, row in _json_or_jsonl(self.path, text):
            yield lineno, Prompt(prompt=self._field(lineno, row, "instruction"))


class LineByLineDataset(FileDataset):
    """One prompt per non-empty line."""

    item_name: ClassVar[str] = "non-empty line"

    def _rows(self, text: str) -> Iterator[tuple[int, Prompt | None]]:
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield lineno, Prompt(prompt=line.strip())


class ShareGPTDataset(FileDataset):
    """ShareGPT conversations (JSON array or JSONL); the first human turn is the prompt.

    With ``--multi-turn`` each conversation is one session: its human turns in order (``Prompt.turns``); the
    recorded assistant turns are dropped, since the session sends the model's own replies as history.
    """

    item_name: ClassVar[str] = "conversation"
    multi_turn: ClassVar[bool] = True  # can yield sessions

    def _rows(self, text: str) -> Iterator[tuple[int, Prompt | None]]:
        for lineno, row in _json_or_jsonl(self.path, text):
            if not isinstance(row, dict) or not isinstance(row.get("conversations"), list):
                raise DatasetError(
                    f"{self.path}:{lineno}: missing list field 'conversations'",
                    'sharegpt rows look like {"conversations": [{"from": "human", "value": ...}]}',
                )
            first = next(
                (
                    t
                    for t in row["conversations"]
                    if isinstance(t, dict)
                    and t.get("from") in ("human", "user")
                    and isinstance(t.get("value"), str)
                ),
                None,
            )
            if first is None:
                yield lineno, None
            elif self.config.multi_turn:
                turns = [
                    str(t["value"])
                    for t in row["conversations"]
                    if isinstance(t, dict)
                    and t.get("from") in ("human", "user")
                    and isinstance(t.get("value"), str)
                ]
                yield lineno, Prompt(prompt=first["value"], turns=turns)
            else:
                yield lineno, Prompt(prompt=first["value"])


class CustomDataset(FileDataset):
    """JSONL with ``prompt`` (string) or ``messages`` (chat list), optional per-row ``max_tokens``."""

    def _rows(self, text: str) -> Iterator[tuple[int, Prompt | None]]:
        for lineno, row in _jsonl(self.path, text):
            if not isinstance(row, dict):
                raise DatasetError(f"{self.path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            mt = row.get("max_tokens")
            if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
                raise DatasetError(f"{self.path}:{lineno}: max_tokens must be a positive integer, got {mt!r}")
            if isinstance(row.get("prompt"), str):
                yield lineno, Prompt(prompt=row["prompt"], max_tokens=mt)
            elif isinstance(row.get("messages"), list) and all(
                isinstance(m, dict) and "role" in m for m in row["messages"]
            ):
                yield lineno, Prompt(messages=row["messages"], max_tokens=mt)
            else:
                raise DatasetError(
                    f"{self.path}:{lineno}: needs a string 'prompt' or a 'messages' list of {{role, content}}"
                )
