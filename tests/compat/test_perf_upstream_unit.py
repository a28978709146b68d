"""Upstream perf options folded into the config: body fields, trackers and their secrets."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from evalscope.engine.redact import scrub
from evalscope.errors import ConfigError
from evalscope.perf.config import make_config
from evalscope.perf.upstream import log_to_trackers


def test_options_become_body_fields_and_conflicts_are_errors() -> None:
    cfg = make_config({"stop": ["a b", "c"], "repetition_penalty": 1.1, "n_choices": 2, "logprobs": True})
    assert cfg.extra_args == {"stop": ["a b", "c"], "repetition_penalty": 1.1, "n": 2, "logprobs": True}
    with pytest.raises(ConfigError, match="contradicts"):
        make_config({"top_k": 5, "extra_args": {"top_k": 6}})
    tpl = '{"model": "%m", "messages": [{"role": "user", "content": "%p"}], "stream": true, "seed": 3}'
    assert make_config({"query_template": tpl}).extra_args == {"seed": 3}
    with pytest.raises(ConfigError, match="%p"):
        make_config({"query_template": '{"messages": [{"role": "user", "content": "Q: %p"}]}'})
    with pytest.raises(ConfigError, match="not both"):
        make_config({"prompt": "hi", "dataset": "random"})
    assert make_config({"prompt": "hi"}).dataset == "prompt"
    assert make_config({"url": "http://h:1/v1/completions"}).api == "openai-completions"
    assert make_config({"url": "http://h:1/v1/chat/completions"}).api == "openai"


def test_tracker_refused_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match="pip install swanlab"):
        make_config({"swanlab_api_key": "sk-swan-canary"})


def test_tracker_logs_and_key_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)

    class Run:
        def log(self, row: dict[str, float], step: int) -> None:
            calls.append(("log", step))

        def finish(self) -> None:
            calls.append(("finish", None))

    fake.login = lambda key: calls.append(("login", key))  # type: ignore[attr-defined]
    fake.init = lambda **kw: (calls.append(("init", kw["config"])), Run())[1]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = make_config({"wandb_api_key": "wandb-canary-0123456789"})
    assert "wandb-canary-0123456789" not in scrub("key wandb-canary-0123456789 leaked")
    assert cfg.public_dict()["wandb_api_key"] == "***"
    log_to_trackers(cfg, {"stages": [{"requests": {"ok": 3}, "throughput": {"req_per_s": 1.5}}]})
    assert calls[0] == ("login", "wandb-canary-0123456789")
    assert "wandb-canary-0123456789" not in str(calls[1][1])
    assert ("log", 0) in calls and calls[-1][0] == "finish"


def test_model_without_url_is_refused_not_simulated() -> None:
    with pytest.raises(ConfigError, match="needs --url"):
        make_config({"model": "Qwen/Qwen2.5-0.5B-Instruct"})
    assert make_config({"model": "sim-model"}).url is None
    assert make_config({"model": "qwen", "url": "http://h:1/v1"}).model == "qwen"


def test_openqa_without_a_file_is_fetched_from_upstreams_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Valid without --dataset-path (upstream downloads it too); offline and uncached, the one line names
    upstream's ModelScope repository (the download itself: tests/integration/test_eval_hub.py)."""
    from evalscope.errors import DatasetError
    from evalscope.perf.datasets import DATASETS
    from evalscope.perf.tokenizer import WordTokenizer

    cfg = make_config({"dataset": "openqa"})
    monkeypatch.setenv("EVALSCOPE_CACHE", str(tmp_path))
    monkeypatch.setenv("EVALSCOPE_OFFLINE", "1")
    with pytest.raises(DatasetError, match="HC3-Chinese") as exc:
        DATASETS.get("openqa")(cfg, WordTokenizer())
    assert "--dataset-path" in exc.value.one_line() and str(tmp_path) in exc.value.one_line()
