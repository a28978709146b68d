"""``--model`` resolution (served name / local path / hub id), the hub cache, offline failure, backend choice.

No network: the hub client is replaced by a function that writes files (or fails), and the cache is a temporary
directory (``EVALSCOPE_CACHE``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evalscope import localmodel
from evalscope.errors import ConfigError
from evalscope.localmodel import (
    check_model_args,
    choose_backend,
    is_hub_id,
    model_cache_dir,
    resolve_model,
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVALSCOPE_CACHE", str(tmp_path / "cache"))
    for k in ("EVALSCOPE_OFFLINE", "HF_HUB_OFFLINE", "MODELSCOPE_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path / "cache"


def _fake_hub(calls: list[tuple[str, str, str | None]]) -> Any:
    def fetch(repo: str, hub: str, revision: str | None, dest: Path) -> None:
        calls.append((repo, hub, revision))
        (dest / "config.json").write_text('{"model_type": "llama"}')
        (dest / "model.safetensors").write_bytes(b"\0" * 64)
        (dest / ".cache").mkdir()
        (dest / ".cache" / "lock").write_text("client bookkeeping")

    return fetch


def test_hub_id_is_downloaded_once_then_served_from_the_cache(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str, str | None]] = []
    monkeypatch.setattr(localmodel, "fetch_snapshot", _fake_hub(calls))
    first = resolve_model("qwen/Qwen2-0.5B-Instruct")
    assert calls == [("qwen/Qwen2-0.5B-Instruct", "modelscope", None)]
    assert first.path == cache / "models" / "modelscope" / "qwen__Qwen2-0.5B-Instruct" / "master"
    assert (first.path / "config.json").is_file() and first.name == "qwen/Qwen2-0.5B-Instruct"
    # second run: nothing is fetched (the client would fail here: no network)
    monkeypatch.setattr(localmodel, "fetch_snapshot", _offline_client)
    again = resolve_model("qwen/Qwen2-0.5B-Instruct")
    assert again.path == first.path
    # huggingface and a revision are separate cache entries
    monkeypatch.setattr(localmodel, "fetch_snapshot", _fake_hub(calls))
    hf = resolve_model("Qwen/Qwen2-0.5B-Instruct", "huggingface", "v1.0")
    assert hf.path == cache / "models" / "huggingface" / "Qwen__Qwen2-0.5B-Instruct" / "v1.0"
    assert calls[-1] == ("Qwen/Qwen2-0.5B-Instruct", "huggingface", "v1.0")


def _offline_client(repo: str, hub: str, revision: str | None, dest: Path) -> None:
    raise ConnectionError("network is unreachable")


def test_a_damaged_cache_entry_is_downloaded_again(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, str | None]] = []
    monkeypatch.setattr(localmodel, "fetch_snapshot", _fake_hub(calls))
    path = resolve_model("org/model").path
    (path / "model.safetensors").write_bytes(b"\0" * 10)  # truncated
    resolve_model("org/model")
    assert len(calls) == 2 and (path / "model.safetensors").stat().st_size == 64


def test_pre_populated_cache_needs_no_client(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = model_cache_dir("org/tiny", "modelscope", None)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / localmodel.MARKER).write_text(
        '{"repo": "org/tiny", "hub": "modelscope", "revision": null, "files": {"config.json": 2}}'
    )
    monkeypatch.setattr(localmodel, "fetch_snapshot", _offline_client)
    monkeypatch.setenv("EVALSCOPE_OFFLINE", "1")
    assert resolve_model("org/tiny").path == target


def test_offline_and_not_cached_is_one_line_with_the_way_out(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(localmodel, "fetch_snapshot", _offline_client)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as e:
        resolve_model("qwen/Qwen2-0.5B-Instruct")
    text = f"{e.value.message} {e.value.hint}"
    assert "'qwen/Qwen2-0.5B-Instruct'" in text and "HF_HUB_OFFLINE" in text
    assert str(model_cache_dir("qwen/Qwen2-0.5B-Instruct", "modelscope", None)) in text
    assert "--model /local/path" in text
    assert e.value.exit_code == 2


def test_download_failure_names_the_alternatives(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localmodel, "fetch_snapshot", _offline_client)
    with pytest.raises(ConfigError, match="network is unreachable") as e:
        resolve_model("org/model")
    assert "--model /local/path" in (e.value.hint or "")
    left = list((cache / "models").rglob("*"))
    assert all(p.is_dir() and not p.name.startswith(".") for p in left), "a half-written cache entry is left"
    assert not model_cache_dir("org/model", "modelscope", None).exists()


def test_cli_offline_hub_model_exits_2_without_traceback(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalscope.cli.eval import eval_cmd

    monkeypatch.setattr(localmodel, "fetch_snapshot", _offline_client)
    monkeypatch.setenv("EVALSCOPE_OFFLINE", "1")
    out = cache.parent / "out"
    mcq = cache.parent / "mcq"
    mcq.mkdir()
    (mcq / "default_val.jsonl").write_text(
        '{"id": "q1", "question": "2+2?", "A": "4", "B": "5", "answer": "A"}\n'
    )
    args = json.dumps({"general_mcq": {"local_path": str(mcq)}})
    res = CliRunner().invoke(
        eval_cmd,
        ["--model", "qwen/Qwen2-0.5B-Instruct", "--backend", "transformers", "--datasets", "general_mcq",
         "--dataset-args", args, "--work-dir", str(out)],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "offline" in res.output and "--model /local/path" in res.output and "Traceback" not in res.output
    assert not out.exists() or not any(out.iterdir()), "no run directory may be created"


def test_local_path_and_names(tmp_path: Path) -> None:
    d = tmp_path / "ckpt"
    d.mkdir()
    r = resolve_model(str(d))
    assert r.path == d.resolve() and r.source == "local"
    with pytest.raises(ConfigError, match="no such file"):
        resolve_model(str(tmp_path / "missing"))
    assert is_hub_id("qwen/Qwen2-0.5B-Instruct") and not is_hub_id("gpt-4o") and not is_hub_id(str(d))
    with pytest.raises(ConfigError, match="neither a local path nor a hub id"):
        resolve_model("gpt-4o")


def test_backend_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localmodel.importlib.util, "find_spec", lambda name: None)
    assert choose_backend(None, "org/m", None, False) == "transformers"
    assert choose_backend(None, str(tmp_path), None, False) == "transformers"
    assert choose_backend(None, "org/m", "http://127.0.0.1:1/v1", False) == "api"
    assert choose_backend(None, "gpt-4o", None, False) == "api"  # refused later: a name needs --api-url
    assert choose_backend(None, None, None, False) == "api"  # the simulator
    assert choose_backend(None, "/m/x.gguf", None, False) == "llama.cpp"
    monkeypatch.setattr(localmodel.importlib.util, "find_spec", lambda name: object())
    assert choose_backend(None, "org/m", None, False) == "vllm"
    assert choose_backend("transformers", "org/m", None, False) == "transformers"
    with pytest.raises(ConfigError, match="--api-url"):
        choose_backend("transformers", "org/m", "http://127.0.0.1:1/v1", False)
    with pytest.raises(ConfigError, match="needs --model"):
        choose_backend("vllm", None, None, False)


def test_config_fields(tmp_path: Path) -> None:
    from evalscope.eval.config import build_config

    cfg = build_config(
        {
            "model": str(tmp_path),
            "datasets": ["arc"],
            "backend": "HF",
            "model_args": "revision=v1.0.2,precision=torch.float16,device_map=auto",
            "template_type": "qwen",
        }
    )
    assert cfg.backend == "transformers" and cfg.resolved_backend() == "transformers"
    assert cfg.model_args == {"revision": "v1.0.2", "dtype": "float16", "device_map": "auto"}
    with pytest.raises(ConfigError, match="allowed: api, transformers, vllm"):
        build_config({"model": str(tmp_path), "datasets": ["arc"], "backend": "tgi"})
    with pytest.raises(ConfigError, match="did you mean 'device_map'"):
        build_config({"model": str(tmp_path), "datasets": ["arc"], "model_args": {"devicemap": "cpu"}})
    with pytest.raises(ConfigError, match=r"--chat-template=.*not a file"):
        build_config(
            {"model": str(tmp_path), "datasets": ["arc"], "chat_template": str(tmp_path / "no.jinja")}
        )
    with pytest.raises(ConfigError, match="needs --api-url"):
        build_config({"model": "org/m", "datasets": ["arc"], "backend": "api"})
    assert check_model_args({"torch_dtype": "bf16"}) == {"dtype": "bfloat16"}
    with pytest.raises(ValueError, match="not a dtype"):
        check_model_args({"precision": "int3"})
