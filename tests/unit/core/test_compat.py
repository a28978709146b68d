"""docs/compat.md is generated from the code's tables, and the tables tell the truth about the CLIs."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from evalscope.cli import _COMMANDS, cli
from evalscope.compat import (
    check_dataset_args,
    compat_rows,
    render_compat_markdown,
    translate_generation_config,
)
from evalscope.compat_cli import EVAL_OPTIONS, PERF_API, PERF_OPTIONS, map_perf_api
from evalscope.errors import ConfigError

DOC = Path(__file__).resolve().parents[3] / "docs" / "compat.md"
CLI_DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def test_compat_doc_is_generated_from_the_code() -> None:
    assert DOC.read_text(encoding="utf-8") == render_compat_markdown(), (
        "docs/compat.md is stale: run python scripts/gen_compat_docs.py"
    )


def _opts(name: str) -> set[str]:
    ctx = click.Context(cli, info_name="evalscope")
    cmd = cli.get_command(ctx, name)
    assert cmd is not None
    return {o for p in cmd.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize(("command", "table"), [("perf", PERF_OPTIONS), ("eval", EVAL_OPTIONS)])
def test_every_accepted_upstream_flag_exists(command: str, table: dict[str, tuple[str, str, str]]) -> None:
    opts = _opts(command)
    missing = []
    for upstream, (_ours, status, _note) in table.items():
        if status == "refused":
            continue
        for flag in upstream.split(" / "):
            if flag not in opts:
                missing.append(flag)
    assert not missing, f"the compat table says these work, but {command} has no such option: {missing}"


def test_api_names_map_or_refuse_with_a_reason() -> None:
    for name, (ours, why) in PERF_API.items():
        if ours:
            assert map_perf_api(name) == ours
        else:
            with pytest.raises(ConfigError, match="not supported"):
                map_perf_api(name)
            assert why


def test_generation_translation() -> None:
    got = translate_generation_config(
        {"do_sample": False, "temperature": 0.8, "max_new_tokens": 9, "num_return_sequences": 2, "top_k": 5}
    )
    assert got == {"temperature": 0, "max_tokens": 9, "n": 2, "top_k": 5}
    assert translate_generation_config({"do_sample": True, "temperature": 0.6}) == {"temperature": 0.6}
    assert translate_generation_config({"stop_words": "###"}) == {"stop": ["###"]}
    assert translate_generation_config({"extra_body": {"repetition_penalty": 1.1}}) == {"repetition_penalty": 1.1}
    with pytest.raises(ValueError, match="max_length"):
        translate_generation_config({"max_length": 100})
    with pytest.raises(ValueError, match="one setting"):
        translate_generation_config({"max_new_tokens": 5, "max_tokens": 6})


def test_dataset_args_check() -> None:
    assert check_dataset_args("general_mcq", {"dataset_id": "/x"}) == {"local_path": "/x"}
    with pytest.raises(ConfigError, match="did you mean 'few_shot_num'"):
        check_dataset_args("arc", {"few_shot_nm": 3})
    with pytest.raises(ConfigError, match="not supported"):
        check_dataset_args("gsm8k", {"filters": {}})
    with pytest.raises(ConfigError, match="query"):
        check_dataset_args("gsm8k", {"prompt_template": "no placeholder"})


def test_rows_have_known_statuses() -> None:
    assert {r.status for r in compat_rows()} <= {"same", "mapped", "ignored", "refused"}


def test_cli_reference_prog_names() -> None:
    text = CLI_DOC.read_text(encoding="utf-8")
    assert "evalscope evalscope" not in text
    for name in _COMMANDS:
        assert f"Usage: evalscope {name} " in text, name
