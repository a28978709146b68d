"""The original quick start on local weights: ``python -m evalscope.run --model <dir> --datasets arc``.

A tiny random-weight Llama (tests/tinymodel.py) runs in-process with ``--backend transformers``; reports,
journal, resume and the response cache work as on the API path, and the seed's ``run_task`` dict (model_args,
template_type, generation_config, dataset_hub, mem_cache, dry_run, use_cache) is honoured. Skipped with a
reason without torch / transformers (the ``local`` extra) or without ../shared/datasets.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["EVALSCOPE_OFFLINE"] = "1"  # nothing may be downloaded
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=400
    )


def _journal(run: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (run / "journal" / "arc.jsonl").read_text().splitlines() if x.strip()]


@pytest.mark.timeout(900)
def test_quick_start_reports_journal_and_resume(
    tiny_llama: Path, shared_datasets: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    # the default backend for a model directory is transformers when vLLM is not importable
    backend = [] if importlib.util.find_spec("vllm") is None else ["--backend", "transformers"]
    res = _run(
        ["-m", "evalscope.run", "--model", str(tiny_llama), "--template-type", "qwen", "--datasets", "arc",
         "--limit", "4", "--dataset-dir", str(shared_datasets), "--work-dir", str(out),
         "--generation-config", "do_sample=false,max_new_tokens=8", "--eval-batch-size", "4", *backend],
        tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "superseded by the tokenizer's own chat template" in res.stderr
    assert "Traceback" not in res.stderr
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    report = json.loads((run / "reports" / tiny_llama.name / "arc.json").read_text())
    assert report["model"] == str(tiny_llama) and report["num_samples"] == 4 and report["errored"] == 0
    assert report["endpoint"] == f"transformers:{tiny_llama.resolve()}"
    assert report["truncated"] == 4  # random weights never say end-of-sequence within 8 tokens
    entries = _journal(run)
    assert len(entries) == 4
    for e in entries:
        usage = e["usage"]
        assert isinstance(usage, dict) and usage["completion_tokens"] == 8 and usage["prompt_tokens"] > 20
        assert e["finish_reason"] == "length" and e["status"] == "scored" and e["output"]
        assert isinstance(e["latency_s"], float) and e["latency_s"] > 0
    first = {e["sample_id"]: e["output"] for e in entries}
    assert (run / "report.html").is_file()

    # resume: two samples lost from the journal are generated again, with the same greedy answers
    lines = (run / "journal" / "arc.jsonl").read_text().splitlines(keepends=True)
    (run / "journal" / "arc.jsonl").write_text("".join(lines[:2]))
    res = _run(["-m", "evalscope.run", "--resume", str(run)], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    again = _journal(run)
    assert len(again) == 4 and {e["sample_id"]: e["output"] for e in again} == first
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"] == str(tiny_llama)
    report = json.loads((run / "reports" / tiny_llama.name / "arc.json").read_text())
    assert report["num_samples"] == 4


SEED_TASK = """
import json, sys
from evalscope.run import run_task
cfg = {{'model': {model!r}, 'datasets': ['arc'], 'limit': 3, 'dataset_dir': {data!r}, 'work_dir': {work!r},
       'model_args': {{'revision': None, 'precision': 'torch.float32', 'device_map': 'cpu'}},
       'generation_config': {{'do_sample': False, 'repetition_penalty': 1.0, 'max_new_tokens': 6}},
       'template_type': 'qwen', 'dataset_hub': 'ModelScope', 'mem_cache': False, 'dry_run': {dry},
       'use_cache': {cache!r}, 'eval_type': 'checkpoint', 'backend': 'transformers'}}
print(json.dumps(run_task(cfg)))
"""


@pytest.mark.timeout(900)
def test_seed_run_task_dict_with_cache_and_dry_run(
    tiny_llama: Path, shared_datasets: Path, tmp_path: Path
) -> None:
    work, cache = tmp_path / "work", tmp_path / "cache"
    fill = dict(model=str(tiny_llama), data=str(shared_datasets), work=str(work), cache=str(cache))
    dry = _run(["-c", SEED_TASK.format(dry=True, **fill)], tmp_path)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Dry run" in dry.stderr and not work.exists() and "Loading" not in dry.stderr
    for _ in range(2):
        res = _run(["-c", SEED_TASK.format(dry=False, **fill)], tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
        reports = json.loads(res.stdout.strip().splitlines()[-1])
        assert reports[str(tiny_llama)]["arc"]["num_samples"] == 3
        assert "'mem_cache'" not in res.stderr  # False: nothing to say
    runs = sorted(p for p in work.iterdir() if p.is_dir())
    assert len(runs) == 2
    a, b = (_journal(r) for r in runs)
    assert not any(e["cached"] for e in a) and all(e["cached"] for e in b)
    assert {e["sample_id"]: e["output"] for e in a} == {e["sample_id"]: e["output"] for e in b}
    assert all(e["usage"]["completion_tokens"] == 6 for e in a)  # type: ignore[index]
