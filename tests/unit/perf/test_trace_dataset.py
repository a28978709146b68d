"""The mooncake-style trace dataset: block ids become shared prompt prefixes, lengths, validation."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from evalscope.errors import DatasetError
from evalscope.perf.datasets import DATASETS, DatasetOptions
from evalscope.perf.tokenizer import get_tokenizer


def _write(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    p = tmp_path / "trace.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return p


def _dataset(path: Path, block: int = 8, seed: int = 0) -> object:
    opts = DatasetOptions(dataset="trace", dataset_path=path, trace_block_size=block, seed=seed)
    return DATASETS.get("trace")(opts, get_tokenizer(None))


def test_shared_block_ids_give_identical_prefixes(tmp_path: Path) -> None:
    rows = [
        {"timestamp": 0, "input_length": 20, "output_length": 3, "hash_ids": [1, 2, 3]},
        {"timestamp": 5, "input_length": 24, "output_length": 4, "hash_ids": [1, 2, 9]},
        {"timestamp": 9, "input_length": 16, "output_length": 5, "hash_ids": [7, 2]},
        {"timestamp": 12, "input_length": 11, "output_length": 6},
    ]
    ds = _dataset(_write(tmp_path, rows))
    it = ds.prompts()  # type: ignore[attr-defined]
    p = [next(it) for _ in range(4)]
    words = [x.prompt.split() for x in p]
    assert [len(w) for w in words] == [20, 24, 16, 11]  # input_length tokens (the word counter)
    assert [x.max_tokens for x in p] == [3, 4, 5, 6]  # output_length
    assert words[0][:16] == words[1][:16]  # blocks 1, 2 shared
    assert words[0][16:] != words[1][16:24]
    assert words[2][8:16] == words[0][8:16]  # block 2 is the same text wherever it appears...
    assert words[2][:8] != words[0][:8]  # ...but a prefix cache only reuses a leading run (block 7 differs)
    assert ds.timestamps_ms == [0, 5, 9, 12]  # type: ignore[attr-defined]
    d = ds.describe()  # type: ignore[attr-defined]
    assert d["requests"] == 4 and d["blocks"] == 5 and d["repeated_block_tokens"] == 3 * 8


def test_block_text_depends_on_the_seed_and_rows_are_time_ordered(tmp_path: Path) -> None:
    rows = [
        {"timestamp": 30.5, "input_length": 8, "output_length": 1, "hash_ids": [4]},
        {"timestamp": 10, "input_length": 8, "output_length": 2, "hash_ids": [4]},
    ]
    path = _write(tmp_path, rows)
    a = next(_dataset(path, seed=0).prompts())  # type: ignore[attr-defined]
    b = next(_dataset(path, seed=1).prompts())  # type: ignore[attr-defined]
    assert a.prompt != b.prompt and a.max_tokens == 2  # the 10 ms row comes first
    assert _dataset(path).timestamps_ms == [10.0, 30.5]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"timestamp": 0, "input_length": 0, "output_length": 1}', "'input_length' must be an integer >= 1"),
        ('{"timestamp": -3, "input_length": 5, "output_length": 1}', "'timestamp' must be"),
        ('{"timestamp": 0, "input_length": 5}', "'output_length'"),
        ('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": ["a"]}', "'hash_ids'"),
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "invalid JSON"),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, line: str, fragment: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1}\n' + line + "\n")
    with pytest.raises(DatasetError) as exc:
        _dataset(p)
    assert fragment in str(exc.value) and f"{p}:2" in str(exc.value)


def test_lazy_build_matches_the_prebuilt_one_and_repeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big trace is built prompt by prompt at send time; the texts are the same as a prebuilt one's, and a
    second pass over the trace repeats the first (shared blocks stay shared)."""
    import evalscope.perf.datasets.trace as trace_mod

    rows = [
        {"timestamp": i, "input_length": 10 + 7 * (i % 3), "output_length": 2, "hash_ids": [i % 2, 50 + i]}
        for i in range(9)
    ]
    path = _write(tmp_path, rows)
    eager = _dataset(path)
    assert eager.describe()["prebuilt"] is True  # type: ignore[attr-defined]
    monkeypatch.setattr(trace_mod, "EAGER_TOKENS", 0)
    lazy = _dataset(path)
    assert lazy.describe()["prebuilt"] is False  # type: ignore[attr-defined]
    a = [p.prompt for p in itertools.islice(eager.prompts(), 18)]  # type: ignore[attr-defined]
    b = [p.prompt for p in itertools.islice(lazy.prompts(), 18)]  # type: ignore[attr-defined]
    assert a == b and a[:9] == a[9:]
