"""Upstream EvalScope's perf / eval quick starts and the seed's README commands, adapted only in URL and data
folder, against a capture server: the exit code, and what reached the server (max_tokens, stop words,
penalties, the translated generation config).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from capture_server import CaptureServer
from docs_commands import REPO, find_data_dir

pytestmark = [pytest.mark.integration]

MODELS = ("qwen", "qwen2.5", "Qwen/Qwen2.5-0.5B-Instruct", "qwen/Qwen2-0.5B-Instruct")


def _run(cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # no network: a hub id without --api-url (local weights) or a dataset without --dataset-dir is offline here
    env.update(EVALSCOPE_OFFLINE="1", EVALSCOPE_CACHE=str(cwd / "cache"))
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    argv = shlex.split(cmd)
    argv = ["-m", "evalscope", *argv[1:]] if argv[0] == "evalscope" else argv[1:]
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def _gen_bodies(srv: CaptureServer) -> list[dict[str, Any]]:
    """Request bodies minus the preflight probe (which asks for a single token)."""
    return [b for b in srv.completions() if b.get("max_tokens") != 1]


@pytest.fixture()
def openqa(tmp_path: Path) -> Path:
    p = tmp_path / "open_qa.jsonl"
    p.write_text("".join(json.dumps({"question": f"What is {i} plus {i}?"}) + "\n" for i in range(5)))
    return p


# -------------------------------------------------------------------------------------------------- perf

PERF: list[tuple[str, str, dict[str, Any]]] = [
    (
        "upstream perf quick start",
        "evalscope perf --url {url}/v1/chat/completions --parallel 2 --model qwen2.5 --number 6 --api openai "
        "--dataset openqa --dataset-path {openqa} --stream",
        {"max_tokens": 2048, "stream": True},
    ),
    (
        "upstream perf, stop word and -n (blog / docs)",
        "evalscope perf --api openai --url {url}/v1/chat/completions --model qwen --dataset openqa "
        "--dataset-path {openqa} --max-prompt-length 8000 --stop <|im_end|> --read-timeout=120 --parallel 1 -n 3",
        {"stop": ["<|im_end|>"], "max_tokens": 2048},
    ),
    (
        "upstream perf sampling parameters",
        "evalscope perf --url {url}/v1/chat/completions --model qwen --parallel 1 --number 3 --api openai "
        "--prompt 'Write a haiku' --max-tokens 64 --temperature 0.7 --top-p 0.8 --frequency-penalty 0.3 "
        "--presence-penalty 0.2 --repetition-penalty 1.05 --n-choices 1 --logprobs --stop-token-ids 151645 "
        "--stop '###' 'END'",
        {
            "max_tokens": 64,
            "temperature": 0.7,
            "top_p": 0.8,
            "frequency_penalty": 0.3,
            "presence_penalty": 0.2,
            "repetition_penalty": 1.05,
            "n": 1,
            "logprobs": True,
            "stop_token_ids": [151645],
            "stop": ["###", "END"],
        },
    ),
    (
        "upstream speed benchmark (completions URL)",
        "evalscope perf --parallel 1 --url {url}/v1/completions --model qwen2.5 --log-every-n-query 5 "
        "--connect-timeout 6000 --read-timeout 6000 --max-tokens 2048 --min-tokens 2048 --api openai "
        "--dataset speed_benchmark -n 5",
        {"max_tokens": 2048, "min_tokens": 2048},
    ),
]


@pytest.mark.parametrize(("label", "cmd", "expect"), PERF, ids=[p[0] for p in PERF])
def test_upstream_perf_commands(
    label: str, cmd: str, expect: dict[str, Any], tmp_path: Path, openqa: Path
) -> None:
    with CaptureServer(models=MODELS) as srv:
        res = _run(cmd.format(url=f"http://127.0.0.1:{srv.port}", openqa=openqa) + " --no-live", tmp_path)
        assert res.returncode == 0, res.stderr[-1500:]
        bodies = _gen_bodies(srv)
    assert bodies, "nothing reached the server"
    for body in bodies:
        for k, v in expect.items():
            assert body.get(k) == v, (label, k, body)
    if "speed_benchmark" in cmd:
        assert all("prompt" in b and "messages" not in b for b in bodies), (
            "a /v1/completions URL gets prompts"
        )
        lengths = [len(b["prompt"].split()) for b in bodies]
        assert lengths == [96, 2048, 6144, 14336, 30720], lengths


def test_upstream_perf_refusals(tmp_path: Path) -> None:
    for cmd, needle in (
        ("evalscope perf --api local_vllm --model qwen", "vllm serve"),
        ("evalscope perf --api dashscope --model qwen", "compatible-mode"),
        ("evalscope perf --api local --model qwen", "not supported"),
        ("evalscope perf --wandb-api-key k --model qwen", "pip install wandb")
        if __import__("importlib").util.find_spec("wandb") is None
        else ("evalscope perf --api custom", "plugin"),
        ("evalscope perf --number -1", "--number"),
        ("evalscope perf --parallel abc", "must be an integer"),
    ):
        res = _run(cmd, tmp_path)
        assert res.returncode == 2, (cmd, res.stderr)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0], (cmd, res.stderr)
        assert "Input should be" not in lines[0] and "No such option" not in lines[0]


# -------------------------------------------------------------------------------------------------- eval

EVAL: list[tuple[str, str, int, dict[str, Any]]] = [
    (
        "upstream eval quick start (service)",
        "evalscope eval --model qwen2.5 --api-url {url}/v1 --api-key EMPTY --eval-type service "
        "--datasets gsm8k --limit 3 --dataset-dir {data}",
        0,
        {"max_tokens": 2048},
    ),
    (
        "upstream eval, openai_api with generation config JSON",
        "evalscope eval --model Qwen/Qwen2.5-0.5B-Instruct --api-url {url}/v1 --eval-type openai_api "
        '--datasets gsm8k --dataset-args \'{{"gsm8k": {{"few_shot_num": 0, "few_shot_random": false}}}}\' '
        '--generation-config \'{{"do_sample": false, "temperature": 0.0, "max_new_tokens": 512, '
        '"repetition_penalty": 1.1, "chat_template_kwargs": {{"enable_thinking": false}}}}\' '
        "--limit 3 --dataset-dir {data}",
        0,
        {
            "max_tokens": 512,
            "temperature": 0,
            "repetition_penalty": 1.1,
            "chat_template_kwargs": {"enable_thinking": False},
        },
    ),
    (
        "seed README: python -m evalscope.run with template type and k=v generation config",
        "python -m evalscope.run --model qwen/Qwen2-0.5B-Instruct --template-type qwen --api-url {url}/v1 "
        "--generation-config do_sample=false,max_new_tokens=256 --datasets arc --limit 3 --dataset-dir {data}",
        0,
        {"max_tokens": 256, "temperature": 0},
    ),
    (
        "seed README: local checkpoint without --api-url, offline and not cached",
        "python -m evalscope.run --model qwen/Qwen2-0.5B-Instruct --template-type qwen --datasets arc --limit 10",
        2,
        {},
    ),
    (
        "upstream eval quick start (checkpoint), offline and not cached",
        "evalscope eval --model Qwen/Qwen2.5-0.5B-Instruct --datasets gsm8k arc --limit 5",
        2,
        {},
    ),
]


@pytest.mark.parametrize(("label", "cmd", "code", "expect"), EVAL, ids=[e[0] for e in EVAL])
def test_upstream_eval_commands(
    label: str, cmd: str, code: int, expect: dict[str, Any], tmp_path: Path
) -> None:
    data = find_data_dir()
    if data is None and "{data}" in cmd:
        pytest.skip("real benchmark data not found at ../shared/datasets (or $EVALSCOPE_SHARED_DATASETS)")
    with CaptureServer(models=MODELS) as srv:
        res = _run(cmd.format(url=f"http://127.0.0.1:{srv.port}", data=data), tmp_path)
        bodies = _gen_bodies(srv)
    assert res.returncode == code, res.stderr[-1500:]
    if code:
        assert not bodies
        assert "offline" in res.stderr and "Traceback" not in res.stderr
        return
    assert bodies
    for body in bodies:
        for k, v in expect.items():
            assert body.get(k) == v, (label, k, body)
        assert "max_new_tokens" not in body and "do_sample" not in body


def test_seed_run_task_dict(tmp_path: Path) -> None:
    """The seed README's run_task dict, adapted in URL and data folder (hellaswag has no local data: arc only)."""
    data = find_data_dir()
    if data is None:
        pytest.skip("real benchmark data not found")
    code = f"""
from evalscope.run import run_task
cfg = {{'model_args': {{'revision': None, 'precision': 'torch.float16', 'device_map': 'auto'}},
       'generation_config': {{'do_sample': False, 'repetition_penalty': 1.0, 'max_new_tokens': 512}},
       'dataset_args': {{}}, 'dry_run': False, 'model': 'qwen/Qwen2-0.5B-Instruct', 'template_type': 'qwen',
       'datasets': ['arc'], 'work_dir': {str(tmp_path / "o")!r}, 'outputs': {str(tmp_path / "o")!r},
       'mem_cache': False, 'dataset_hub': 'ModelScope', 'dataset_dir': {str(data)!r}, 'limit': 3, 'debug': False,
       'api_url': '{{url}}/v1'}}
print(sorted(run_task(cfg)['qwen/Qwen2-0.5B-Instruct']))
"""
    with CaptureServer(models=MODELS) as srv:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
        res = subprocess.run(
            [sys.executable, "-c", code.replace("{url}", f"http://127.0.0.1:{srv.port}")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        bodies = _gen_bodies(srv)
    assert res.returncode == 0, res.stderr[-1500:]
    assert "['arc']" in res.stdout
    assert "'template_type' is accepted for compatibility and ignored" in res.stderr
    assert "'model_args' is accepted" in res.stderr
    assert bodies and all(b["max_tokens"] == 512 and b["temperature"] == 0 for b in bodies)
    assert all(b["repetition_penalty"] == 1.0 for b in bodies)
