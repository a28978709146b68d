"""Journal (D8 torn lines), response cache (D9) and EvalConfig validation (V1)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from evalscope.errors import ConfigError
from evalscope.eval.cache import ResponseCache, cache_key
from evalscope.eval.config import build_config, load_task_config, parse_generation_config
from evalscope.eval.journal import JournalError, JournalWriter, latest_entries, read_journal


def _entry(i: int, status: str = "scored") -> dict[str, object]:
    return {"sample_id": f"s{i}", "repeat": 0, "status": status, "score": 1.0}


def test_journal_roundtrip_and_latest_wins(tmp_path: Path) -> None:
    p = tmp_path / "j.jsonl"
    with JournalWriter(p) as w:
        w.append(_entry(1, "errored"))
        w.append(_entry(2))
        w.append(_entry(1))
    entries, _ = read_journal(p)
    assert len(entries) == 3
    latest = latest_entries(entries)
    assert latest[("s1", 0)]["status"] == "scored" and len(latest) == 2


def test_torn_last_line_is_tolerated_and_truncated_before_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = tmp_path / "j.jsonl"
    with JournalWriter(p) as w:
        w.append(_entry(1))
        w.append(_entry(2))
    with p.open("ab") as f:
        f.write(b'{"sample_id": "s3", "repe')  # crash mid-write
    with caplog.at_level(logging.WARNING):
        entries, _ = read_journal(p)
    assert [e["sample_id"] for e in entries] == ["s1", "s2"]
    assert "torn last line 3" in caplog.text
    with JournalWriter(p) as w:  # resume appends after truncating the torn tail
        w.append(_entry(3))
    entries, _ = read_journal(p)
    assert [e["sample_id"] for e in entries] == ["s1", "s2", "s3"]
    assert all(line.startswith(b"{") for line in p.read_bytes().splitlines())


def test_complete_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    p = tmp_path / "j.jsonl"
    p.write_bytes(b'{"sample_id": "a", "repeat": 0}\n{"sample_id": "b", "repeat": 0}')
    entries, _ = read_journal(p)
    assert [e["sample_id"] for e in entries] == ["a", "b"]
    with JournalWriter(p) as w:
        w.append({"sample_id": "c", "repeat": 0})
    assert [e["sample_id"] for e in read_journal(p)[0]] == ["a", "b", "c"]


def test_torn_middle_line_is_rejected_with_line_number(tmp_path: Path) -> None:
    p = tmp_path / "j.jsonl"
    p.write_bytes(
        b'{"sample_id": "a", "repeat": 0}\n{"sample_id": "b", "rep\n{"sample_id": "c", "repeat": 0}\n'
    )
    with pytest.raises(JournalError, match="line 2"):
        read_journal(p)


def test_cache_key_covers_model_endpoint_body_and_repeat() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    k = cache_key("m", "http://h/v1/chat/completions", body)
    assert k == cache_key("m", "http://h/v1/chat/completions", dict(reversed(list(body.items()))))
    assert k != cache_key("m2", "http://h/v1/chat/completions", body)
    assert k != cache_key("m", "http://other/v1/chat/completions", body)
    assert k != cache_key("m", "http://h/v1/chat/completions", {**body, "temperature": 0.5})
    assert k != cache_key("m", "http://h/v1/chat/completions", body, repeat=1)


def test_cache_persists_and_survives_torn_tail(tmp_path: Path) -> None:
    c = ResponseCache(tmp_path / "c").open()
    c.put("k1", {"text": "a"})
    c.close()
    with (tmp_path / "c" / "responses.jsonl").open("ab") as f:
        f.write(b'{"key": "k2", "te')
    c2 = ResponseCache(tmp_path / "c").open()
    assert c2.get("k1") == {"key": "k1", "text": "a"} and c2.get("k2") is None
    c2.put("k3", {"text": "b"})
    c2.close()
    c3 = ResponseCache(tmp_path / "c").open()
    assert len(c3) == 2
    c3.close()


def test_generation_config_parsing() -> None:
    assert parse_generation_config("temperature=0,max_tokens=2048,top_p=0.9") == {
        "temperature": 0,
        "max_tokens": 2048,
        "top_p": 0.9,
    }
    assert parse_generation_config('stop=["a,b","c"],seed=3') == {"stop": ["a,b", "c"], "seed": 3}
    assert parse_generation_config('{"temperature": 0.5}') == {"temperature": 0.5}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"datasets": ["arc"], "eval_batch_size": 0}, "--eval-batch-size=0"),
        ({"datasets": ["arc"], "limit": -3}, "--limit=-3"),
        ({"datasets": []}, "--datasets"),
        ({}, "--datasets is required"),
        ({"datasets": ["arc"], "generation_config": "max_tokens=abc"}, "max_tokens"),
        ({"datasets": ["arc"], "generation_config": "temperature"}, "key=value"),
        ({"datasets": ["arc"], "dataset_args": "{bad json"}, "invalid JSON"),
        ({"datasets": ["arc"], "dataset_args": {"mmlu": {"few_shot_num": 5}}}, "not in --datasets"),
        ({"datasets": ["arc"], "api_url": "ftp://x"}, "http(s)"),
        ({"datasets": ["arc"], "use_cache": "a", "resume": "b"}, "mutually exclusive"),
        ({"datasets": ["arc"], "dataset_hub": "s3"}, "--dataset-hub"),
        ({"datasets": ["arc"], "bogus": 1}, "unknown option 'bogus'"),
    ],
)
def test_invalid_options_are_one_clear_line(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        build_config(data)
    assert needle in ei.value.one_line()
    assert "\n" not in ei.value.one_line()
    assert ei.value.exit_code == 2


def test_api_key_sources_and_redaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALSCOPE_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-canary-123")
    cfg = build_config({"datasets": "arc gsm8k"})
    assert cfg.datasets == ["arc", "gsm8k"]
    assert cfg.resolved_api_key() == "sk-env-canary-123"
    f = tmp_path / "key"
    f.write_text("sk-file-canary-456\n")
    cfg2 = build_config({"datasets": ["arc"], "api_key_file": str(f)})
    assert cfg2.resolved_api_key() == "sk-file-canary-456"
    cfg3 = build_config({"datasets": ["arc"], "api_key": "sk-cli-canary-789"})
    assert "sk-cli-canary-789" not in str(cfg3.redacted_dict()) and "sk-cli-canary-789" not in repr(cfg3)
    assert cfg3.redacted_dict()["api_key"] == "***"
    cfg4 = build_config({"datasets": ["arc"], "generation_config": "max_tokens=64"})
    assert cfg4.redacted_dict()["generation_config"] == {"max_tokens": 64}  # "token" keys are not secrets


def test_load_task_config_from_dict_yaml_json(tmp_path: Path) -> None:
    d = {"model": "m", "datasets": ["arc"], "limit": 5, "eval_type": "service", "api_base": "http://h:1/v1"}
    cfg = load_task_config(d)
    assert cfg.api_url == "http://h:1/v1" and cfg.limit == 5
    y = tmp_path / "t.yaml"
    y.write_text("model: m\napi_url: sim\ndatasets: [arc, gsm8k]\ngeneration_config:\n  max_new_tokens: 32\n")
    cfg2 = load_task_config(str(y))
    assert cfg2.datasets == ["arc", "gsm8k"] and cfg2.generation_config == {"max_tokens": 32}
    j = tmp_path / "t.json"
    j.write_text('{"datasets": ["arc"], "eval_batch_size": 7}')
    assert load_task_config(j).eval_batch_size == 7
    assert load_task_config(cfg) is cfg
    with pytest.raises(ConfigError, match="not found"):
        load_task_config(str(tmp_path / "missing.yaml"))


def test_limit_takes_round_robin_across_subsets_in_dataset_order() -> None:
    from evalscope.eval.benchmarks.base import Sample
    from evalscope.eval.runner import limit_samples

    samples = [Sample(id=f"a{i}", messages=[], gold="A", subset="a") for i in range(5)]
    samples += [Sample(id=f"b{i}", messages=[], gold="A", subset="b") for i in range(2)]
    samples += [Sample(id=f"c{i}", messages=[], gold="A", subset="c") for i in range(5)]
    got = [s.id for s in limit_samples(samples, 8)]
    assert got == ["a0", "a1", "a2", "b0", "b1", "c0", "c1", "c2"]
    assert limit_samples(samples, 100) == samples
    one = [Sample(id=str(i), messages=[], gold="A") for i in range(5)]
    assert [s.id for s in limit_samples(one, 2)] == ["0", "1"]
