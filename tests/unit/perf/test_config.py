"""PerfConfig: defaults, validation messages, stages, keys, config files; the CLI built from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from evalscope.errors import ConfigError
from evalscope.perf.config import PerfConfig, load_config_file, make_config


def test_defaults_and_stages() -> None:
    cfg = make_config({})
    assert cfg.parallel == [1] and cfg.stages() == [(1, 100)]
    cfg = make_config({"parallel": "1 4 16", "number": "10,40,160"})
    assert cfg.stages() == [(1, 10), (4, 40), (16, 160)]
    cfg = make_config({"parallel": [2, 4], "number": 7})
    assert cfg.stages() == [(2, 7), (4, 7)]
    assert make_config({"duration": 5}).stages() == [(1, None)]


def test_rate_and_cap() -> None:
    assert make_config({"rate": -1}).rate is None
    cfg = make_config({"rate": 100})
    assert cfg.concurrency_cap(1) == 100_000
    assert make_config({"rate": 100, "parallel": 8}).concurrency_cap(8) == 8


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"parallel": "0"}, "--parallel='0'"),
        ({"rate": "0"}, "--rate"),
        ({"top_p": 2}, "--top-p"),
        ({"goodput": ["latency:5"]}, "unknown SLO metric 'latency'"),
        ({"headers": ["novalue"]}, "is not K=V"),
        ({"api": "opena"}, "Did you mean: openai"),
        ({"min_tokens": 10, "max_tokens": 5}, "--min-tokens must be <= --max-tokens"),
        ({"dataset": "line_by_line"}, "needs --dataset-path"),
        ({"paralel": 3}, "did you mean 'parallel'"),
    ],
)
def test_validation_one_line(values: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        make_config(values)
    msg = ei.value.one_line()
    assert needle in msg and "\n" not in msg


def test_api_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert make_config({}).resolve_api_key() is None
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai")
    assert make_config({}).resolve_api_key() == "from-openai"
    monkeypatch.setenv("EVALSCOPE_API_KEY", "from-evalscope")
    assert make_config({}).resolve_api_key() == "from-evalscope"
    f = tmp_path / "key"
    f.write_text("from-file\n")
    assert make_config({"api_key_file": str(f)}).resolve_api_key() == "from-file"
    cfg = make_config({"api_key": "direct-key"})
    assert cfg.resolve_api_key() == "direct-key"
    assert "direct-key" not in repr(cfg) and cfg.public_dict()["api_key"] == "***"
    cfg = make_config({"headers": ["X-Auth-Token=tok-123456", "X-Trace=abc"]})
    assert cfg.public_dict()["headers"] == {"X-Auth-Token": "***", "X-Trace": "abc"}


def test_config_file_yaml_and_json(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("parallel: [1, 2]\nmax-tokens: 9\ngoodput: {ttft: 500}\n")
    cfg = make_config(load_config_file(y))
    assert cfg.parallel == [1, 2] and cfg.max_tokens == 9 and cfg.goodput == {"ttft": 500.0}
    j = tmp_path / "c.json"
    j.write_text('{"rate": 5, "burstiness": 0.5}')
    assert make_config(load_config_file(j)).burstiness == 0.5
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config_file(bad)


def test_cli_help_lists_every_option() -> None:
    from evalscope.cli.perf import perf

    res = CliRunner().invoke(perf, ["--help"], terminal_width=100)
    assert res.exit_code == 0
    for name in (
        "--url",
        "--parallel",
        "--number",
        "--rate",
        "--burstiness",
        "--goodput",
        "--metric-profile",
        "--no-test-connection",
        "--stream / --no-stream",
        "--max-error-rate",
        "--strict",
        "--config",
    ):
        assert name in res.output, name
    for field in PerfConfig.model_fields:
        assert field.replace("_", "-") in res.output or field in ("test_connection", "live"), field
