"""``sample_sent``: a bounded, spread sample of a stage's sent times from ``records.jsonl``."""

from __future__ import annotations

from pathlib import Path

import orjson

from evalscope.perf.sendside import sample_sent


def _write(path: Path, n: int, stage: int = 0, start: int = 0) -> None:
    with path.open("ab") as f:
        for i in range(start, start + n):
            status = "error" if i % 7 == 3 else "ok"
            pad = "x" * (i % 50)  # lines of different lengths
            f.write(orjson.dumps({"id": i, "status": status, "sent_ns": 1000 + i, "stage": stage, "p": pad}))
            f.write(b"\n")


def test_small_stage_takes_every_ok_line(tmp_path: Path) -> None:
    p = tmp_path / "records.jsonl"
    _write(p, 50)
    got = sample_sent(p, 0, 0, max_sample=100)
    assert got == {str(i): 1000 + i for i in range(50) if i % 7 != 3}


def test_large_stage_is_bounded_spread_and_from_offset(tmp_path: Path) -> None:
    p = tmp_path / "records.jsonl"
    _write(p, 300, stage=0)
    offset = p.stat().st_size
    _write(p, 20_000, stage=1, start=300)
    p.open("ab").write(b'{"id": 99999, "status": "ok", "sen')  # a torn last line
    got = sample_sent(p, offset, 1, max_sample=500)
    assert 300 <= len(got) <= 500
    ids = sorted(int(k) for k in got)
    assert all(300 <= i < 20_300 and i % 7 != 3 for i in ids)
    assert got[str(ids[0])] == 1000 + ids[0]
    assert ids[0] < 300 + 200 and ids[-1] > 20_300 - 200  # spread over the whole stage
    assert sample_sent(p, offset, 0, max_sample=500) == {}  # other stages' lines are not taken


def test_a_long_stage_is_not_read_into_memory(tmp_path: Path) -> None:
    """A million-request stage is hundreds of MB of records: the sample maps the file instead of reading it."""
    import tracemalloc

    p = tmp_path / "records.jsonl"
    line = orjson.dumps({"id": 0, "status": "ok", "sent_ns": 1, "stage": 0, "p": "y" * 400}) + b"\n"
    with p.open("wb") as f:
        f.write(line * 60_000)  # 25 MB
    tracemalloc.start()
    try:
        got = sample_sent(p, 0, 0, max_sample=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == {"0": 1}
    assert peak < 2_000_000, f"peak {peak} bytes for a {p.stat().st_size}-byte file"
