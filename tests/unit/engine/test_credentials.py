"""One rule for the API key in every front end (issue 12): flag, else file, else environment; a named file
must give a key (perf used to treat an empty file as "no key" and skip the environment, eval refused it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evalscope.engine.credentials import read_key_file, resolve_api_key
from evalscope.errors import ConfigError
from evalscope.eval.config import build_config
from evalscope.perf.config import make_config


def _perf(values: dict[str, object]) -> str | None:
    return make_config(
        {"url": "http://127.0.0.1:9/v1/chat/completions", "model": "m", **values}
    ).resolve_api_key()


def _eval(values: dict[str, object]) -> str | None:
    return build_config({"datasets": ["arc"], **values}).resolved_api_key()


FRONT_ENDS: dict[str, Callable[[dict[str, object]], str | None]] = {"perf": _perf, "eval": _eval}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALSCOPE_API_KEY", "sk-env-evalscope")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-openai")


def test_order_flag_file_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "key"
    f.write_text("\n  sk-from-file  \nsecond line\n")
    assert resolve_api_key("sk-flag", None) == "sk-flag"
    assert resolve_api_key(None, f) == "sk-from-file"
    assert resolve_api_key(None, None) == "sk-env-evalscope"
    monkeypatch.delenv("EVALSCOPE_API_KEY")
    assert resolve_api_key(None, None) == "sk-env-openai"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert resolve_api_key(None, None) is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-openai")
    assert resolve_api_key("", None) is None  # an explicit empty key sends none, whatever is exported


@pytest.mark.parametrize("front", sorted(FRONT_ENDS))
def test_empty_key_file_is_an_error_in_every_front_end(front: str, tmp_path: Path) -> None:
    f = tmp_path / "key"
    f.write_text("  \n\n")
    with pytest.raises(ConfigError, match="is empty") as ei:
        FRONT_ENDS[front]({"api_key_file": str(f)})
    assert ei.value.exit_code == 2


@pytest.mark.parametrize("front", sorted(FRONT_ENDS))
def test_key_file_wins_over_environment_in_every_front_end(front: str, tmp_path: Path) -> None:
    f = tmp_path / "key"
    f.write_text("sk-file-canary\n")
    assert FRONT_ENDS[front]({"api_key_file": str(f)}) == "sk-file-canary"
    assert FRONT_ENDS[front]({"api_key": "sk-flag-canary"}) == "sk-flag-canary"
    assert FRONT_ENDS[front]({}) == "sk-env-evalscope"


@pytest.mark.parametrize("front", sorted(FRONT_ENDS))
def test_flag_and_file_together_are_refused(front: str, tmp_path: Path) -> None:
    f = tmp_path / "key"
    f.write_text("sk-file\n")
    with pytest.raises(ConfigError, match="either --api-key or --api-key-file") as ei:
        FRONT_ENDS[front]({"api_key_file": str(f), "api_key": "sk-flag-canary"})
    assert "sk-flag-canary" not in str(ei.value) and "sk-file" not in str(ei.value)


def test_unreadable_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_key_file(tmp_path / "absent")
    bad = tmp_path / "latin1"
    bad.write_bytes(b"\xff\xfekey")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_key_file(bad)
