"""Run directories never collide; records are whole lines; torn-line handling; redaction of saved JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from evalscope.engine.redact import register_secret
from evalscope.perf.storage import RecordWriter, make_run_dir, read_records, safe_json, write_json_atomic


def test_run_dirs_are_unique(tmp_path: Path) -> None:
    dirs = {make_run_dir(tmp_path, "same name") for _ in range(5)}
    assert len(dirs) == 5 and all(d.is_dir() for d in dirs)


def test_writer_batches_and_flushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evalscope.perf.storage as st

    monkeypatch.setattr(st, "FLUSH_INTERVAL_S", 0.05)
    path = tmp_path / "r.jsonl"
    w = RecordWriter(path)
    w.add({"id": 1, "text": "secret text", "error": None})
    assert path.read_bytes() == b""  # batched
    time.sleep(0.06)
    w.maybe_flush()
    line = path.read_text()
    assert line.endswith("\n") and json.loads(line)["text"] is None  # no text without --save-responses
    w.close()


def test_writer_writes_chunks_in_order_and_counts_the_lines_given(tmp_path: Path) -> None:
    """A core's batches go to the file as they are (writev, no join), in order, more than one writev's worth."""
    import evalscope.perf.storage as st

    path = tmp_path / "r.jsonl"
    w = RecordWriter(path)
    chunks = [f'{{"id":{i}}}\n'.encode() for i in range(3 * st._IOV_MAX + 5)]
    w.add_lines(chunks[:10], 10)
    w.add_lines([b"".join(chunks[10:20])], 10)  # a worker's batch: one chunk of many lines
    w.add_lines(chunks[20:], len(chunks) - 20)
    w.close()
    assert [r["id"] for r in read_records(path)] == list(range(len(chunks)))
    assert w.written == len(chunks)


def test_a_short_write_is_finished_from_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """writev may write less than asked (a signal, a disk that was full): the rest follows, nothing twice."""
    import os

    import evalscope.perf.storage as st

    real = os.writev
    cuts = iter([7, 1, 0, 25])  # bytes the next writev calls may write before stopping short

    def short_writev(fd: int, bufs: list[bytes]) -> int:
        limit = next(cuts, None)
        if limit is None:
            return real(fd, bufs)
        return os.write(fd, b"".join(bufs)[:limit])

    monkeypatch.setattr(st.os, "writev", short_writev)
    path = tmp_path / "r.jsonl"
    chunks = [b"alpha\n", b"beta\n", b"gamma\n", b"delta\n"]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for _ in range(5):
            st.write_all(fd, chunks)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(chunks) * 5


def test_without_writev_the_chunks_are_written_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import evalscope.perf.storage as st

    monkeypatch.delattr(st.os, "writev")
    path = tmp_path / "r.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        st.write_all(fd, [b"one\n", b"two\n"])
    finally:
        os.close(fd)
    assert path.read_bytes() == b"one\ntwo\n"


def test_read_records_torn_last_vs_middle(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert read_records(p) == [{"a": 1}, {"a": 2}]
    p.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(ValueError, match=r"r.jsonl:2"):
        read_records(p)


def test_safe_json_masks_keys_and_values_but_keeps_token_fields(tmp_path: Path) -> None:
    register_secret("sk-unit-canary-123456")
    obj = {
        "api_key": "sk-unit-canary-123456",
        "headers": {"Authorization": "Bearer x"},
        "max_tokens": 5,
        "output_tokens_per_s": 1.5,
        "example": "bad key sk-unit-canary-123456 rejected",
    }
    out = safe_json(obj)
    assert out["api_key"] == "***" and out["headers"]["Authorization"] == "***"
    assert out["max_tokens"] == 5 and out["output_tokens_per_s"] == 1.5
    assert "sk-unit-canary" not in out["example"]
    write_json_atomic(tmp_path / "m.json", out)
    assert json.loads((tmp_path / "m.json").read_text()) == out
    assert not list(tmp_path.glob(".*.tmp"))


def test_encode_record_keeps_non_string_keys_and_scrubs() -> None:
    """The fast encoding (string keys only) falls back for a dict with int keys; texts are dropped unless
    kept, and the line always ends with one newline."""
    import orjson

    from evalscope.perf.storage import encode_record

    plain = encode_record({"id": 1, "text": "hi", "error": None})
    assert plain.endswith(b"\n") and orjson.loads(plain) == {
        "id": 1,
        "text": None,
        "error": None,
        "reasoning": None,
        "tool_calls": None,
    }
    kept = encode_record({"id": 2, "tool_calls": {0: {"name": "f"}}, "error": None}, save_responses=True)
    assert orjson.loads(kept) == {"id": 2, "tool_calls": {"0": {"name": "f"}}, "error": None}
