"""Datasets: exact random lengths (re-tokenised), each file format, malformed input with line numbers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from evalscope.errors import DatasetError, UnknownNameError
from evalscope.perf.config import make_config
from evalscope.perf.datasets import DATASETS
from evalscope.perf.tokenizer import WordTokenizer
from evalscope.sim import count_tokens


def build(**kw: object):  # type: ignore[no-untyped-def]
    cfg = make_config(kw)
    return DATASETS.get(cfg.dataset)(cfg, WordTokenizer())


def test_random_exact_lengths_retokenised() -> None:
    ds = build(dataset="random", min_prompt_length=20, max_prompt_length=40, prefix_length=5, seed=1)
    prompts = list(itertools.islice(ds.prompts(), 300))
    lengths = [count_tokens(p.prompt) for p in prompts]  # the simulator's own counter
    assert all(25 <= n <= 45 for n in lengths)
    assert all(p.prompt_tokens == n for p, n in zip(prompts, lengths, strict=True))
    assert len(set(lengths)) > 10
    prefixes = {" ".join(p.prompt.split()[:5]) for p in prompts}
    assert len(prefixes) == 1
    d = ds.describe()["achieved_prompt_tokens"]
    assert d["exact_fraction"] == 1.0 and d["generated"] == 300


@pytest.mark.parametrize(("lo", "hi", "prefix"), [(1, 3, 0), (1, 3, 2), (1, 1, 7), (40, 90, 0)])
def test_random_counts_equal_the_simulators(lo: int, hi: int, prefix: int) -> None:
    """The word tokenizer counts its own texts by their spaces: that is the simulator's count."""
    ds = build(dataset="random", min_prompt_length=lo, max_prompt_length=hi, prefix_length=prefix, seed=3)
    for p in itertools.islice(ds.prompts(), 300):
        assert p.prompt is not None and p.prompt == p.prompt.strip()
        assert p.prompt_tokens == count_tokens(p.prompt) == WordTokenizer().count(p.prompt)


def test_random_fixed_length_and_seed() -> None:
    a = [p.prompt for p in itertools.islice(build(min_prompt_length=64, max_prompt_length=64).prompts(), 5)]
    b = [p.prompt for p in itertools.islice(build(min_prompt_length=64, max_prompt_length=64).prompts(), 5)]
    assert a == b and all(count_tokens(t) == 64 for t in a)


def test_random_prompts_are_the_same_across_draw_batches_and_skips() -> None:
    """Prompts are drawn a batch at a time: past a batch boundary they stay exact, varied and reproducible,
    and a consumer that skips (a worker's stride, a resumed run) sees the same prompt at each index."""
    n = 700  # spans three draws
    a = [p.prompt for p in itertools.islice(build(min_prompt_length=3, max_prompt_length=9).prompts(), n)]
    b = [p.prompt for p in itertools.islice(build(min_prompt_length=3, max_prompt_length=9).prompts(), n)]
    assert a == b and len(set(a[250:300])) > 40
    assert all(3 <= count_tokens(t) <= 9 for t in a)
    skipping = build(min_prompt_length=3, max_prompt_length=9).prompts()
    assert [p.prompt for p in itertools.islice(skipping, 300, n, 97)] == a[300::97]


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_openqa(tmp_path: Path) -> None:
    p = write(tmp_path, "q.jsonl", '{"question": "what is up"}\n\n{"question": "why"}\n')
    ds = build(dataset="openqa", dataset_path=str(p))
    got = [x.prompt for x in itertools.islice(ds.prompts(), 3)]
    assert got == ["what is up", "why", "what is up"]


def test_longalpaca_json_and_length_filter(tmp_path: Path) -> None:
    rows = [{"instruction": "word " * n} for n in (3, 10, 50)]
    p = write(tmp_path, "la.json", json.dumps(rows))
    ds = build(dataset="longalpaca", dataset_path=str(p), min_prompt_length=5, max_prompt_length=20)
    assert [r.prompt_tokens for r in ds.rows] == [10]


def test_line_by_line(tmp_path: Path) -> None:
    p = write(tmp_path, "l.txt", "first prompt\n\n  second  \n")
    ds = build(dataset="line_by_line", dataset_path=str(p))
    assert [r.prompt for r in ds.rows] == ["first prompt", "second"]


def test_sharegpt_first_human_turn(tmp_path: Path) -> None:
    rows = [
        {"conversations": [{"from": "system", "value": "sys"}, {"from": "human", "value": "hi there"}]},
        {"conversations": [{"from": "gpt", "value": "only bot"}]},
    ]
    p = write(tmp_path, "s.json", json.dumps(rows))
    ds = build(dataset="sharegpt", dataset_path=str(p))
    assert [r.prompt for r in ds.rows] == ["hi there"]


def test_custom_prompt_messages_max_tokens(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "c.jsonl",
        '{"prompt": "a b c", "max_tokens": 7}\n{"messages": [{"role": "user", "content": "x y"}]}\n',
    )
    ds = build(dataset="custom", dataset_path=str(p), max_tokens=99)
    assert ds.rows[0].max_tokens == 7 and ds.rows[0].prompt_tokens == 3
    assert ds.rows[1].messages == [{"role": "user", "content": "x y"}] and ds.rows[1].max_tokens == 99


@pytest.mark.parametrize(
    ("dataset", "text", "needle"),
    [
        ("openqa", '{"question": "ok"}\n{"question": oops}\n', ":2: invalid JSON"),
        ("openqa", '{"question": "ok"}\n{"q": "x"}\n', ":2: missing string field 'question'"),
        ("openqa", "", "is empty"),
        ("custom", '{"prompt": "ok"}\n\n{"neither": 1}\n', ":3: needs a string 'prompt'"),
        ("custom", '{"prompt": "ok", "max_tokens": -1}\n', ":1: max_tokens"),
        ("sharegpt", '{"conversations": []}\n{"x": 1}\n', ":2: missing list field 'conversations'"),
        (
            "longalpaca",
            '[{"instruction": "a"}, {"instruction": 5}]',
            ":2: missing string field 'instruction'",
        ),
        ("longalpaca", '[{"instruction": "a"},\n {"instruction": ]', ":2: invalid JSON"),
        ("line_by_line", "\n  \n", "is empty"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, dataset: str, text: str, needle: str) -> None:
    p = write(tmp_path, "d.txt", text)
    with pytest.raises(DatasetError) as ei:
        build(dataset=dataset, dataset_path=str(p))
    assert needle in ei.value.one_line()


def test_wrong_encoding_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"question": "ok"}\n{"question": "\xff\xfe"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not UTF-8"):
        build(dataset="openqa", dataset_path=str(p))
    with pytest.raises(DatasetError, match="not found"):
        build(dataset="openqa", dataset_path=str(tmp_path / "nope.jsonl"))


def test_filter_leaves_nothing(tmp_path: Path) -> None:
    p = write(tmp_path, "q.jsonl", '{"question": "short"}\n')
    with pytest.raises(DatasetError, match="length filter"):
        build(dataset="openqa", dataset_path=str(p), min_prompt_length=100)


def test_registry_did_you_mean() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: sharegpt"):
        DATASETS.get("sharegtp")
