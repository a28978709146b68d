"""A model given as a path (``--model /models/hf-tiny``, as transformers serve and vLLM want it) names its
report folder after the last path component, not the whole path with slashes replaced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.integration]


@pytest.mark.timeout(120)
def test_path_model_report_folder_is_its_last_component(tmp_path: Path) -> None:
    data = tmp_path / "data" / "gsm8k"
    data.mkdir(parents=True)
    rows = [{"question": f"What is {i} plus 2?", "answer": f"{i}+2\n#### {i + 2}"} for i in range(4)]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "train.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    cfg = SimConfig(
        ttft_ms=1, itl_ms=0, models=["/models/hf-tiny"], prefix_cache=True, prefix_block=4, timings=True
    )
    with SimProcess(cfg) as sim:
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "evalscope",
                "eval",
                "--model",
                "/models/hf-tiny",
                "--api-url",
                sim.url,
                "--datasets",
                "gsm8k",
                "--dataset-dir",
                str(tmp_path / "data"),
                "--limit",
                "4",
                "--work-dir",
                str(tmp_path / "out"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=90,
        )
    assert res.returncode == 0, res.stderr
    (run,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert sorted(p.name for p in (run / "reports").iterdir()) == ["hf-tiny"]
    report = json.loads((run / "reports" / "hf-tiny" / "gsm8k.json").read_text())
    assert report["model"] == "/models/hf-tiny"  # the report still names the model as it was served
    # the endpoint performance block carries what the server reported (shared few-shot prefix, llama.cpp timings)
    server = report["performance"]["server"]
    assert server["prefix_cache"]["requests"] == 4 and server["prefix_cache"]["hit_rate"] > 0
    assert server["timings"]["requests"] == 4 and server["timings"]["predicted_tokens_per_s"] > 0
    assert "prefix cache hit" in res.stdout + res.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["reports"]["gsm8k"] == "reports/hf-tiny/gsm8k.json"


def test_model_dir_name() -> None:
    from evalscope.eval.report import model_dir_name

    assert model_dir_name("/models/hf-tiny") == "hf-tiny"
    assert model_dir_name("/models/hf-tiny/") == "hf-tiny"
    assert model_dir_name("./ckpt/step-100") == "step-100"
    assert model_dir_name("Qwen/Qwen2.5-7B-Instruct") == "Qwen_Qwen2.5-7B-Instruct"  # a hub id keeps its org
    assert model_dir_name("sim-model") == "sim-model"
