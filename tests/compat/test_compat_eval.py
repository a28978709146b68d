"""Upstream eval spellings reach the server translated, the same way from the CLI, YAML and run_task.

A capture server on loopback records the request bodies; ``general_mcq`` reads a two-question file written
here, so no shared data is needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from capture_server import CaptureServer
from click.testing import CliRunner

from evalscope.cli.eval import eval_cmd
from evalscope.errors import ConfigError

UPSTREAM_GEN = {
    "do_sample": False,
    "temperature": 0.7,
    "max_new_tokens": 77,
    "repetition_penalty": 1.05,
    "num_return_sequences": 1,
    "stop_words": ["###"],
}
EXPECTED = {"max_tokens": 77, "temperature": 0, "repetition_penalty": 1.05, "n": 1, "stop": ["###"]}
DROPPED = ("max_new_tokens", "do_sample", "num_return_sequences", "stop_words")


@pytest.fixture()
def mcq_dir(tmp_path: Path) -> Path:
    d = tmp_path / "mcq"
    d.mkdir()
    rows = [
        {"id": "q1", "question": "2+2?", "A": "4", "B": "5", "answer": "A"},
        {"id": "q2", "question": "3+3?", "A": "6", "B": "7", "answer": "A"},
    ]
    (d / "default_val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return d


def _check_bodies(bodies: list[dict[str, Any]]) -> None:
    gen = [b for b in bodies if "2+2" in json.dumps(b) or "3+3" in json.dumps(b)]
    assert len(gen) == 2, bodies
    for body in gen:
        for k, v in EXPECTED.items():
            assert body.get(k) == v, (k, body)
        for k in DROPPED:
            assert k not in body, (k, body)


def _cli(args: list[str]) -> Any:
    return CliRunner().invoke(eval_cmd, args, catch_exceptions=False)


def test_cli_json_generation_config_is_translated(tmp_path: Path, mcq_dir: Path) -> None:
    with CaptureServer() as srv:
        res = _cli(
            [
                "--model",
                "qwen",
                "--api-url",
                srv.base,
                "--datasets",
                "general_mcq",
                "--dataset-args",
                json.dumps({"general_mcq": {"local_path": str(mcq_dir)}}),
                "--generation-config",
                json.dumps(UPSTREAM_GEN),
                "--work-dir",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        assert res.exit_code == 0, res.output
        _check_bodies(srv.bodies)


def test_cli_kv_generation_config_is_translated(tmp_path: Path, mcq_dir: Path) -> None:
    kv = "do_sample=false,temperature=0.7,max_new_tokens=77,repetition_penalty=1.05,num_return_sequences=1"
    kv += ',stop_words=["###"]'
    with CaptureServer() as srv:
        res = _cli(
            [
                "--model",
                "qwen",
                "--api-url",
                srv.base,
                "--datasets",
                "general_mcq",
                "--dataset-args",
                json.dumps({"general_mcq": {"dataset_id": str(mcq_dir)}}),
                "--generation-config",
                kv,
                "--work-dir",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        assert res.exit_code == 0, res.output
        _check_bodies(srv.bodies)


def _task(srv: CaptureServer, mcq_dir: Path, tmp_path: Path) -> dict[str, Any]:
    return {
        "model": "qwen",
        "api_url": srv.base,
        "eval_type": "service",
        "datasets": ["general_mcq"],
        "dataset_args": {"general_mcq": {"local_path": str(mcq_dir)}},
        "generation_config": UPSTREAM_GEN,
        "work_dir": str(tmp_path / "out"),
        "quiet": True,
    }


def test_yaml_and_run_task_and_taskconfig_translate_the_same(tmp_path: Path, mcq_dir: Path) -> None:
    import yaml

    from evalscope import run_task
    from evalscope.config import TaskConfig

    with CaptureServer() as srv:
        task = _task(srv, mcq_dir, tmp_path)
        path = tmp_path / "task.yaml"
        path.write_text(yaml.safe_dump(task), encoding="utf-8")
        run_task(str(path))
        _check_bodies(srv.bodies)
        srv.bodies.clear()
        run_task(task)
        _check_bodies(srv.bodies)
        srv.bodies.clear()
        reports = run_task(TaskConfig(**task))
        _check_bodies(srv.bodies)
        assert reports["qwen"]["general_mcq"]


def test_served_name_without_api_url_is_refused(tmp_path: Path) -> None:
    """A plain model name has no weights to run here (a hub id or a path does: tests/unit/core/test_localmodel.py)."""
    out = tmp_path / "out"
    res = CliRunner().invoke(eval_cmd, ["--model", "my-model", "--datasets", "arc", "--work-dir", str(out)])
    assert res.exit_code == 2
    assert "no --api-url" in res.output and "--simulator" in res.output
    assert not out.exists() or not any(out.iterdir()), "no run directory may be created"


def test_simulator_only_when_asked(tmp_path: Path, mcq_dir: Path) -> None:
    from evalscope.eval.config import build_config

    args = {"general_mcq": {"local_path": str(mcq_dir)}}
    cfg = build_config(
        {"model": "my-model", "api_url": "sim", "datasets": ["general_mcq"], "dataset_args": args}
    )
    assert cfg.simulator and cfg.api_url is None
    assert build_config({"datasets": ["arc"]}).simulator is False  # no --model: the simulator, unlabelled
    with pytest.raises(ConfigError, match="no --api-url"):
        build_config({"model": "my-model", "datasets": ["arc"]})
    from evalscope.eval.config import load_task_config

    with pytest.raises(ConfigError, match="no --api-url"):  # checkpoint: local weights, and "m" is no path
        load_task_config({"model": "m", "eval_type": "checkpoint", "datasets": ["arc"]})
    cfg = load_task_config(
        {"model": str(tmp_path), "eval_type": "checkpoint", "datasets": ["arc"], "backend": "transformers"}
    )
    assert cfg.resolved_backend() == "transformers"


def test_unknown_dataset_args_key_is_an_error_with_did_you_mean(tmp_path: Path, mcq_dir: Path) -> None:
    res = CliRunner().invoke(
        eval_cmd,
        [
            "--datasets",
            "general_mcq",
            "--dry-run",
            "--dataset-args",
            json.dumps({"general_mcq": {"local_path": str(mcq_dir), "few_shot_nm": 2}}),
        ],
    )
    assert res.exit_code == 2, res.output
    assert "few_shot_nm" in res.output and "few_shot_num" in res.output
    res = CliRunner().invoke(
        eval_cmd,
        [
            "--datasets",
            "general_mcq",
            "--dry-run",
            "--dataset-args",
            json.dumps({"general_mcq": {"local_path": str(mcq_dir), "metric_list": ["acc"]}}),
        ],
    )
    assert res.exit_code == 2 and "metric_list" in res.output and "not supported" in res.output


def test_prompt_template_and_system_prompt_reach_the_server(tmp_path: Path, mcq_dir: Path) -> None:
    args = {
        "general_mcq": {
            "local_path": str(mcq_dir),
            "prompt_template": "PREFIX {query} SUFFIX",
            "system_prompt": "Be terse.",
        }
    }
    with CaptureServer() as srv:
        res = _cli(
            [
                "--model",
                "qwen",
                "--api-url",
                srv.base,
                "--datasets",
                "general_mcq",
                "--dataset-args",
                json.dumps(args),
                "--work-dir",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
        assert res.exit_code == 0, res.output
        gen = [b for b in srv.bodies if "2+2" in json.dumps(b)]
        assert gen
        msgs = gen[0]["messages"]
        assert msgs[0] == {"role": "system", "content": "Be terse."}
        assert msgs[-1]["content"].startswith("PREFIX ") and msgs[-1]["content"].endswith(" SUFFIX")


def test_unreachable_endpoint_leaves_no_run_dir(tmp_path: Path, mcq_dir: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    res = CliRunner().invoke(
        eval_cmd,
        [
            "--model",
            "qwen",
            "--api-url",
            f"http://127.0.0.1:{port}/v1",
            "--datasets",
            "general_mcq",
            "--dataset-args",
            json.dumps({"general_mcq": {"local_path": str(mcq_dir)}}),
            "--work-dir",
            str(tmp_path / "out"),
            "--connect-timeout",
            "2",
        ],
    )
    assert res.exit_code == 3, res.output
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_judge_strategy_rule_and_auto_accepted_llm_needs_a_judge(tmp_path: Path, mcq_dir: Path) -> None:
    base = [
        "--datasets",
        "general_mcq",
        "--dry-run",
        "--dataset-args",
        json.dumps({"general_mcq": {"local_path": str(mcq_dir)}}),
    ]
    assert CliRunner().invoke(eval_cmd, [*base, "--judge-strategy", "rule"]).exit_code == 0
    res = CliRunner().invoke(eval_cmd, [*base, "--judge-strategy", "auto"])
    assert res.exit_code == 0, res.output  # auto without a judge: rule scoring
    res = CliRunner().invoke(eval_cmd, [*base, "--judge-strategy", "llm"])
    assert res.exit_code == 2 and "needs a judge" in res.output  # general_mcq cannot be judged: no judge given
