"""The OpenCompass adapter without OpenCompass: translation, result conversion, the missing-package line, and
the original's documented task-config dict run end to end against the simulator with a fake ``opencompass``
package (tests/unit/eval_backends/fake_opencompass). The real framework runs in ``nox -s crosscheck_opencompass``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evalscope.errors import ConfigError
from evalscope.eval.backends.base import BackendRun
from evalscope.eval.backends.convert import read_samples
from evalscope.eval.backends.opencompass import (
    DATASETS,
    api_base,
    build_math,
    find_dataset,
    model_specs,
    reader_range,
    render_config,
    sample_records,
)
from evalscope.eval.config import build_config

FAKE = Path(__file__).parent / "fake_opencompass"
SRC = Path(__file__).resolve().parents[3] / "src"
DATA = Path(os.environ.get("EVALSCOPE_DATASETS", "/work/shared/datasets"))


def _run(tmp_path: Path, **ec: Any) -> BackendRun:
    return BackendRun(eval_config=ec, run_dir=tmp_path, api_url=None, api_key="sk-secret-1234")


def test_models_in_the_originals_shape(tmp_path: Path) -> None:
    run = _run(
        tmp_path,
        models=[
            {
                "path": "Qwen2-0.5B-Instruct",
                "openai_api_base": "http://127.0.0.1:8000/v1/chat/completions",
                "is_chat": True,
                "batch_size": 16,
                "temperature": 0.0,
            }
        ],
    )
    (spec,) = model_specs(run)
    assert spec.base == "http://127.0.0.1:8000/v1"
    assert spec.fields["batch_size"] == 16 and spec.fields["temperature"] == 0.0
    assert spec.fields["abbr"] == "Qwen2-0.5B-Instruct" and spec.key == "sk-secret-1234"
    text = render_config(
        [DATASETS["gsm8k"]], {"gsm8k": "/d/gsm8k"}, [spec], tmp_path / "tok", reader_range(5)
    )
    assert "sk-secret" not in text and "key='ENV'" in text
    assert "_d['path'] = '/d/gsm8k'" in text and "test_range'] = '[0:5]'" in text
    compile(text, "config.py", "exec")  # valid Python for mmengine
    assert api_base("http://h:1") == "http://h:1/v1"


@pytest.mark.parametrize(
    ("models", "needle"),
    [
        ([{"path": "m", "openai_api_base": "http://h/v1", "is_chat": False}], "is_chat: false"),
        ([{"path": "m", "openai_api_base": "http://h/v1", "bogus": 1}], "unknown key(s) bogus"),
        ([{"openai_api_base": "http://h/v1"}], "no 'path'"),
        ([{"path": "m", "openai_api_base": "http://h/v1", "meta_template": "nope"}], "meta_template"),
    ],
)
def test_bad_models_are_one_line(tmp_path: Path, models: list[dict[str, Any]], needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        model_specs(_run(tmp_path, models=models))
    assert needle in ei.value.one_line() and "\n" not in ei.value.one_line()


def test_dataset_names_limits_and_built_math(tmp_path: Path) -> None:
    assert find_dataset("arc-c").name == "ARC_c" and find_dataset("CEVAL").name == "ceval"
    with pytest.raises(ConfigError, match="no local-data mapping"):
        find_dataset("mmlu")
    assert reader_range("[2:5]") == "[2:5]" and reader_range(0.5) == 0.5 and reader_range(None) is None
    with pytest.raises(ConfigError):
        reader_range(0)
    src = tmp_path / "math_test.csv"
    src.write_text(",Question,Answer\n0,What is $1+1$?,2\n1,Simplify $x$.,\\frac{1}{2}\n", encoding="utf-8")
    out = json.loads((build_math(src, tmp_path / "m") / "math.json").read_text(encoding="utf-8"))
    assert out["1"] == {"problem": "Simplify $x$.", "solution": "\\boxed{\\frac{1}{2}}"}


def test_sample_records_from_each_details_shape() -> None:
    listed = {
        "accuracy": 50.0,
        "details": [
            {"pred": ["18"], "answer": ["18"], "correct": [True]},
            {"pred": ["NULL"], "answer": ["3"], "correct": [False]},
        ],
    }
    preds = {"0": {"origin_prompt": "Q0", "prediction": "so 18", "gold": "18"}}
    recs = sample_records(listed, preds, "gsm8k")
    assert (
        [r.correct for r in recs] == [True, False]
        and recs[0].prediction == "so 18"
        and recs[1].extracted == "NULL"
    )
    keyed = {
        "details": {
            "type": "GEN",
            "0": {"predictions": "B", "references": "B"},
            "1": {"predictions": "C", "references": "A", "is_correct": False},
        }
    }
    assert [r.correct for r in sample_records(keyed, {}, "x")] == [True, False]


def test_eval_config_fields() -> None:
    cfg = build_config(
        {
            "eval_backend": "opencompass",
            "eval_config": {
                "datasets": ["gsm8k"],
                "models": [{"path": "m", "openai_api_base": "http://h/v1", "key": "sk-abcdef"}],
            },
        }
    )
    assert cfg.eval_backend == "OpenCompass" and cfg.datasets == []
    assert "sk-abcdef" not in json.dumps(cfg.redacted_dict())
    with pytest.raises(ConfigError, match="--datasets is required"):
        build_config({"eval_backend": "OpenCompass"})
    with pytest.raises(ConfigError, match="needs --eval-backend"):
        build_config({"datasets": ["arc"], "eval_config": {"datasets": ["x"]}})


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalscope", "eval", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_package_is_one_line_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "EVALSCOPE_OPENCOMPASS_PYTHON": sys.executable}
    p = _cli(
        [
            "--eval-backend",
            "OpenCompass",
            "--datasets",
            "gsm8k",
            "--api-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
            "--dataset-dir",
            str(DATA),
        ],
        env,
        tmp_path,
    )
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'evalscope[opencompass]'" in lines[0]


@pytest.mark.skipif(not (DATA / "gsm8k" / "test.jsonl").is_file(), reason="shared datasets not present")
def test_documented_task_config_runs_with_the_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalscope.run import run_task
    from evalscope.sim import SimConfig, SimProcess

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE), str(SRC)]))
    monkeypatch.setenv("EVALSCOPE_OPENCOMPASS_PYTHON", sys.executable)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak-9876")
    sim = SimProcess(
        SimConfig(policy="choice", models=["Qwen2-0.5B-Instruct"], ttft_ms=1.0, itl_ms=0.0)
    ).start()
    try:
        # the original's documented dict; only the endpoint and the data paths changed (mmlu has no local data)
        task_cfg_dict = dict(
            eval_backend="OpenCompass",
            eval_config={
                "datasets": ["ARC_c", "gsm8k"],
                "models": [
                    {
                        "path": "Qwen2-0.5B-Instruct",
                        "openai_api_base": f"{sim.url}/v1/chat/completions",
                        "is_chat": True,
                        "batch_size": 16,
                    },
                ],
                "work_dir": str(tmp_path / "outputs/qwen2_eval_result"),
                "limit": 4,
                "dataset_dir": str(DATA),
            },
        )
        reports = run_task(task_cfg_dict)
    finally:
        sim.stop()
    reps = reports["Qwen2-0.5B-Instruct"]
    assert set(reps) == {"ARC_c", "gsm8k"}
    (run_dir,) = (tmp_path / "outputs/qwen2_eval_result").iterdir()
    for bench in ("ARC_c", "gsm8k"):
        saved = json.loads((run_dir / "reports" / "Qwen2-0.5B-Instruct" / f"{bench}.json").read_text())
        recs = read_samples(run_dir / "samples" / "Qwen2-0.5B-Instruct" / f"{bench}.jsonl")
        assert saved["num_samples"] == len(recs) == 4
        assert saved["score"] == sum(r.correct for r in recs) / 4
        assert saved["backend"]["name"] == "OpenCompass" and saved["backend"]["data_layout"] == "direct"
        assert all(r.prompt and r.prediction and "ANSWER:" in r.prediction for r in recs)
    # the choice policy answers "ANSWER: X": the fake's (OpenCompass's) ARC rule reads it
    arc = read_samples(run_dir / "samples" / "Qwen2-0.5B-Instruct" / "ARC_c.jsonl")
    assert all(r.extracted in "ABCD" and r.extracted for r in arc)
    log = (run_dir / "logs" / "opencompass.log").read_text()
    assert "fake opencompass: done" in log
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert "sk-should-not-leak" not in f.read_text(errors="replace"), f
