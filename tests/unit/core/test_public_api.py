"""The package's public surface and the CLI's lazy imports."""

from __future__ import annotations

import subprocess
import sys

import evalscope


def test_exports_are_pinned() -> None:
    assert sorted(evalscope.__all__) == sorted(
        [
            "__version__",
            "run_perf",
            "PerfConfig",
            "run_eval",
            "EvalConfig",
            "run_task",
            "EvalscopeError",
            "ConfigError",
            "EndpointError",
        ]
    )
    for name in evalscope.__all__:
        assert getattr(evalscope, name) is not None


def test_help_and_version_do_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from evalscope.cli import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(cli, ['--version'])\n"
        "assert r.exit_code == 0 and '0.1.0' in r.output\n"
        "heavy = [m for m in ('aiohttp', 'numpy', 'transformers', 'hdrh', 'rich', 'pydantic') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"--help imported: {out.stdout.strip()}"


def test_registry_did_you_mean() -> None:
    from evalscope.errors import ConfigError, UnknownNameError
    from evalscope.registry import Registry

    reg: Registry[int] = Registry("dataset")
    reg.add("sharegpt", 1)
    reg.add("random", 2)
    try:
        reg.get("sharegtp")
    except UnknownNameError as exc:
        assert "Did you mean: sharegpt?" in str(exc) and "Available: random, sharegpt" in str(exc)
        assert exc.exit_code == 2
    else:
        raise AssertionError("expected UnknownNameError")
    try:
        reg.add("random", 3)
    except ConfigError:
        pass
    else:
        raise AssertionError("duplicate accepted")


def test_redaction() -> None:
    from evalscope.engine.redact import redact, register_secret, scrub

    register_secret("sk-canary-123456")
    cfg = {
        "api_key": "sk-canary-123456",
        "headers": {"Authorization": "Bearer abcdefgh"},
        "note": "key sk-canary-123456",
    }
    out = redact(cfg)
    assert "sk-canary" not in str(out) and "abcdefgh" not in str(out)
    assert scrub("Authorization: Bearer zzzzzzzzzz") == "Authorization: Bearer ***"


def test_redaction_keeps_token_counters() -> None:
    from evalscope.engine.redact import is_secret_key, redact

    for k in (
        "api_key",
        "API-KEY",
        "Authorization",
        "hf_token",
        "access_token",
        "openai_api_key",
        "x-api-key",
        "token",
    ):
        assert is_secret_key(k), k
    for k in (
        "max_tokens",
        "prompt_tokens",
        "completion_tokens",
        "min_tokens",
        "tokenizer_path",
        "max_completion_tokens",
    ):
        assert not is_secret_key(k), k
    assert redact({"max_tokens": 5, "usage": {"prompt_tokens": 3}}) == {
        "max_tokens": 5,
        "usage": {"prompt_tokens": 3},
    }
