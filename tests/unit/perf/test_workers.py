"""Worker pieces that need no network: the index sources, the sizing rule, framing, prompt picking."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing as mp
from typing import Any

import pytest

from evalscope.perf._core import SharedCounter, WorkerCore, _Strided
from evalscope.perf._pools import resolve_workers, split_evenly
from evalscope.perf._wire import RECORDS, FrameOutbox, frame, read_frame
from evalscope.perf.config import make_config
from evalscope.perf.schedule import arrival_offsets_ns


def test_split_evenly() -> None:
    assert split_evenly(16, 4) == [4, 4, 4, 4]
    assert split_evenly(10, 4) == [3, 3, 2, 2]
    assert split_evenly(3, 3) == [1, 1, 1]
    for total, parts in itertools.product(range(1, 40), range(1, 9)):
        s = split_evenly(total, parts)
        assert sum(s) == total and max(s) - min(s) <= 1


def drain(src: Any, limit: int | None, n: int = 10_000) -> list[int]:
    out = []
    for _ in range(n):
        i = src.claim(limit)
        if i is None:
            break
        out.append(i)
    return out


def test_strided_indices_partition_exactly() -> None:
    got = [drain(_Strided(k, 3), 100) for k in range(3)]
    assert sorted(itertools.chain(*got)) == list(range(100))
    assert got[0][:3] == [0, 3, 6]


def _claimer(value: Any, limit: int, q: Any) -> None:
    c = SharedCounter(value)
    q.put(drain(c, limit))


def test_shared_counter_hands_out_each_index_once_across_processes() -> None:
    ctx = mp.get_context("spawn")
    value = ctx.Value("q", 0)
    q = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(value, 5000, q)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sorted(itertools.chain(*got)) == list(range(5000))
    c = SharedCounter(value)
    assert c.claim(5000) is None
    c.reset()
    assert c.claim(None) == 0


def test_open_loop_arrivals_split_by_index_are_the_same_schedule() -> None:
    full = list(itertools.islice(arrival_offsets_ns(500, 1.0, 3), 999))
    parts = [list(itertools.islice(arrival_offsets_ns(500, 1.0, 3), k, 999, 3)) for k in range(3)]
    assert sorted(itertools.chain(*parts)) == sorted(full)
    assert parts[1] == full[1::3]


def test_auto_rule() -> None:
    cfg = make_config(workers="auto", parallel=[1])
    assert resolve_workers(cfg, local_simulator=False)[0] == 1
    n, how = resolve_workers(make_config(workers="auto", parallel=[10_000]), local_simulator=True)
    assert n >= 1 and "auto" in how
    assert resolve_workers(make_config(workers=3), local_simulator=True) == (3, "3 (--workers)")
    assert resolve_workers(make_config(ray="local"), local_simulator=True)[0] == 2
    assert resolve_workers(make_config(ray="local", workers=4), local_simulator=True)[0] == 4


def test_auto_rule_scales_with_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import evalscope.perf._pools as w

    monkeypatch.setattr(w, "usable_cpus", lambda: 16)
    assert resolve_workers(make_config(workers="auto", parallel=[512]), local_simulator=False)[0] == 8
    assert resolve_workers(make_config(workers="auto", parallel=[4096]), local_simulator=True)[0] == 15
    # open loop: 1,000 req/s x 256 tokens = 256k events/s -> 7 workers
    cfg = make_config(workers="auto", parallel=[8], rate=1000, max_tokens=256)
    assert resolve_workers(cfg, local_simulator=False)[0] == 7


def test_workers_option_validation() -> None:
    from evalscope.errors import ConfigError

    assert make_config(workers="AUTO").workers == "auto"
    assert make_config(workers="2").workers == 2
    for bad in ("0", "-1", "two"):
        with pytest.raises(ConfigError, match="--workers"):
            make_config(workers=bad)


async def test_frames_round_trip() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(frame(RECORDS, b'{"a":1}\n') + frame(b"p", b""))
    reader.feed_eof()
    assert await read_frame(reader) == (RECORDS, b'{"a":1}\n')
    assert await read_frame(reader) == (b"p", b"")
    with pytest.raises(asyncio.IncompleteReadError):
        await read_frame(reader)


def test_prompt_by_index_matches_sequential_order() -> None:
    from evalscope.perf.datasets import DATASETS
    from evalscope.perf.tokenizer import get_tokenizer

    cfg = make_config(min_prompt_length=5, max_prompt_length=50, seed=4)
    seq = list(itertools.islice(DATASETS.get("random")(cfg, get_tokenizer(None)).prompts(), 30))
    core = WorkerCore(
        {"cfg": cfg, "worker": 0, "url": "http://127.0.0.1:9", "model": "m"},
        FrameOutbox(lambda k, p: None),
        None,
    )
    core._prompts = DATASETS.get("random")(cfg, get_tokenizer(None)).prompts()
    for idx in (2, 3, 10, 29):
        assert core._prompt_at(idx).prompt == seq[idx].prompt
    with pytest.raises(RuntimeError):
        core._prompt_at(5)


def test_progress_on_an_error_sends_the_last_ticks_medians_without_folding() -> None:
    """Under --max-errors every failed request sends progress; reading a median would fold every success the
    aggregator holds, so that progress carries the medians of the last tick (the counts are current)."""
    from evalscope.engine.records import ErrorInfo, RequestRecord
    from evalscope.perf._core import CoreStage
    from evalscope.perf.aggregate import Aggregator

    cfg = make_config(max_errors=1000)
    sent: list[dict[str, Any]] = []
    outbox = FrameOutbox(lambda k, p: None)
    outbox.progress = sent.append  # type: ignore[method-assign]
    core = WorkerCore({"cfg": cfg, "worker": 0, "url": "http://127.0.0.1:9", "model": "m"}, outbox, None)
    st = CoreStage(
        {
            "index": 0,
            "warmup": False,
            "rate": None,
            "number": 10,
            "cap": 1,
            "t0_ns": None,
            "duration_ns": None,
        }
        | {"id_base": 0, "prompt_base": 0},
        0,
    )
    st.start(0, Aggregator(0))
    assert st.agg is not None

    def ok(i: int, ttft: int) -> RequestRecord:
        return RequestRecord(
            i,
            "ok",
            1000,
            1000,
            first_token_ns=1000 + ttft,
            last_token_ns=2000 + ttft,
            end_ns=3000 + ttft,
            completion_tokens=2,
        )

    core._on_record(st, ok(0, 5_000_000), 0)
    tick = core._progress(st)  # a tick: medians computed
    core._on_record(st, ok(1, 9_000_000), 0)
    core._on_record(st, ok(2, 9_000_000), 0)
    held = len(st.agg._rows)
    core._on_record(st, RequestRecord(3, "error", 1000, 1000, end_ns=5000, error=ErrorInfo("http_status")), 0)
    assert sent and sent[-1]["failed"] == 1 and sent[-1]["ok"] == 3
    assert sent[-1]["ttft_p50"] == tick["ttft_p50"] == pytest.approx(5.0, rel=1e-3)
    assert len(st.agg._rows) == held > 0  # nothing was folded for it
    assert core._progress(st)["ttft_p50"] == pytest.approx(9.0, rel=1e-3)  # the next tick sees all three
