"""``--headers`` (issue 10 item 6): K=V and 'K: V' with any value; an error never echoes a value."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from evalscope.engine.redact import scrub
from evalscope.errors import ConfigError
from evalscope.perf.config import make_config


def test_values_with_spaces_and_both_spellings() -> None:
    cfg = make_config({"headers": ["Authorization=Bearer sk-HDRTEST-111", "X-Trace: a b=c", "X-Empty="]})
    assert cfg.headers == {"Authorization": "Bearer sk-HDRTEST-111", "X-Trace": "a b=c", "X-Empty": ""}
    assert cfg.public_dict()["headers"]["Authorization"] == "***"
    assert "sk-HDRTEST-111" not in scrub("echo Bearer sk-HDRTEST-111 and sk-HDRTEST-111")  # registered


def test_one_string_is_one_header() -> None:
    assert make_config({"headers": "Authorization: Bearer sk-one two"}).headers == {
        "Authorization": "Bearer sk-one two"
    }


@pytest.mark.parametrize(
    "spec",
    [
        "Bearer sk-HDRLEAK-222",
        "Bad Name=sk-HDRLEAK-222",
        "X-Key=sk-HDRLEAK-222\r\nX-Evil: 1",
        "=sk-HDRLEAK-222",
    ],
)
def test_errors_name_the_header_never_the_value(spec: str) -> None:
    with pytest.raises(ConfigError) as ei:
        make_config({"headers": [spec]})
    msg = ei.value.one_line()
    assert "sk-HDRLEAK-222" not in msg and msg.startswith("--headers")


def test_cli_keeps_each_argument_as_one_header(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalscope.cli import perf as perf_cli

    seen: dict[str, object] = {}

    def fake_main(config_file: str | None, given: dict[str, object]) -> None:
        seen.update(make_config(given).headers)

    monkeypatch.setattr(perf_cli, "_main", fake_main)
    res = CliRunner().invoke(
        perf_cli.perf, ["--headers", "Authorization=Bearer sk-CLI-333", "X-A: 1 2", "--headers", "X-B=3"]
    )
    assert res.exit_code == 0, res.output
    assert seen == {"Authorization": "Bearer sk-CLI-333", "X-A": "1 2", "X-B": "3"}
