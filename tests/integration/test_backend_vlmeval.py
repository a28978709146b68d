"""``get_backend("VLMEvalKit")``: config translation, local image-MCQ data, the subprocess driver and the
conversion into our report, against the simulator.

CI runs VLMEvalKit's stand-in (``fake_vlmeval``: same entry points, same result files); ``test_real_vlmevalkit``
runs the real ms-vlmeval when ``EVALSCOPE_VLMEVAL_PYTHON`` names a Python that has it (nox session ``vlmeval``).
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from evalscope.errors import ConfigError, DatasetError, EndpointError
from evalscope.eval.backends.base import BackendRun, get_backend
from evalscope.eval.backends.vlmeval import INSTALL_HINT, PYTHON_ENV, norm_model_name, translate
from evalscope.eval.benchmarks.image_mcq import DATA_FILE, TSV_NAME, build_tsv, read_tsv, vlmeval_prompt
from evalscope.eval.report import print_table
from evalscope.sim import SimConfig, SimProcess
from evalscope.sim.config import ScriptRule
from evalscope.sim.policies import choice_text, prompt_seed

pytestmark = [pytest.mark.timeout(300), pytest.mark.integration]

FAKE = Path(__file__).with_name("fake_vlmeval")


def documented(api_base: str) -> dict[str, Any]:
    """The original EvalScope's documented VLMEvalKit task config, endpoint and data changed."""
    return {
        "data": [TSV_NAME],
        "limit": 20,
        "mode": "all",
        "model": [
            {
                "api_base": api_base,
                "key": "EMPTY",
                "name": "CustomAPIModel",
                "temperature": 0.0,
                "type": "sim-model",
                "img_size": -1,
            }
        ],
        "reuse": False,
        "nproc": 4,
        "judge": "exact_matching",
        "work_dir": "outputs",
    }


@pytest.fixture
def fake_vlmeval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PYTHON_ENV, sys.executable)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")]))


def expected_choice(seed: int, limit: int | None = None) -> dict[str, str]:
    """index -> the letter the simulator's ``choice`` policy answers for VLMEvalKit's prompt of that row."""
    out = {}
    for row in read_tsv()[:limit]:
        prompt = vlmeval_prompt(row)
        text = choice_text(random.Random(prompt_seed(seed, prompt)), prompt)
        out[row["index"]] = text.rsplit("ANSWER: ", 1)[1].strip()
    return out


def answer_key() -> list[ScriptRule]:
    return [
        ScriptRule(pattern=re.escape(vlmeval_prompt(r).split("Please select")[0]), reply=r["answer"])
        for r in read_tsv()
    ]


def test_committed_tsv_is_what_the_generator_draws() -> None:
    assert DATA_FILE.read_text(encoding="utf-8") == build_tsv()
    rows = read_tsv()
    assert len(rows) == 24 and {r["category"] for r in rows} == {"colour", "shape", "count", "position"}
    assert len({vlmeval_prompt(r) for r in rows}) == 24  # an answer key can be keyed on the prompt
    import base64

    assert all(base64.b64decode(r["image"]).startswith(b"\x89PNG\r\n\x1a\n") for r in rows)


def test_translation_of_the_documented_config(tmp_path: Path) -> None:
    cfg = documented("http://127.0.0.1:9/v1/chat/completions")
    cfg["model"].append({"name": "CustomAPIModel", "type": "Qwen/Qwen2.5-VL-7B:fp8", "key": "sk-two"})
    cfg["OPENAI_API_KEY"] = "sk-judge"
    plan, env = translate(BackendRun(eval_config=cfg, run_dir=tmp_path, api_url="http://h:1/v1", limit=3))
    assert list(plan["models"]) == ["sim-model", "Qwen2_5-VL-7B-fp8"]
    second = plan["models"]["Qwen2_5-VL-7B-fp8"]
    assert (
        second["api_base"] == "http://h:1/v1/chat/completions" and second["model"] == "Qwen/Qwen2.5-VL-7B:fp8"
    )
    assert second["class"] == "CustomAPIModel" and second["img_size"] == -1
    assert (
        plan["limit"] == 3
        and plan["work_dir"] == str(tmp_path / "outputs")
        and plan["judge"] == "exact_matching"
    )
    assert "sk-two" not in json.dumps(plan) and "sk-judge" not in json.dumps(plan)
    assert env == {
        "EVALSCOPE_VLMEVAL_KEY_0": "EMPTY",
        "EVALSCOPE_VLMEVAL_KEY_1": "sk-two",
        "OPENAI_API_KEY": "sk-judge",
    }
    assert norm_model_name("a/b.c:d") == "b_c-d"
    plan, _ = translate(
        BackendRun(eval_config={"data": "x"}, run_dir=tmp_path, api_url="http://h:1", model="m", api_key=None)
    )
    assert plan["models"]["m"]["api_base"] == "http://h:1/v1/chat/completions"
    for bad, why in (
        ({"data": []}, "data is empty"),
        ({"data": ["x"], "model": ["GPT4o"]}, "only API models"),
        ({"data": ["x"], "model": [{"name": "X"}]}, "no api_base"),
        (
            {"data": ["x"], "mode": "both", "model": [{"name": "CustomAPIModel", "api_base": "http://h"}]},
            "mode",
        ),
    ):
        with pytest.raises(ConfigError, match=why):
            translate(BackendRun(eval_config=bad, run_dir=tmp_path))


def test_not_installed_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("vlmeval") is not None:
        pytest.skip("vlmeval is importable here")
    monkeypatch.delenv(PYTHON_ENV, raising=False)
    b = get_backend("VLMEvalKit")
    assert b.available() == INSTALL_HINT and "pip install 'evalscope[vlmeval]'" in INSTALL_HINT
    with pytest.raises(ConfigError) as err:
        b.run(BackendRun(eval_config=documented("http://127.0.0.1:9/v1"), run_dir=tmp_path))
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    monkeypatch.setenv(PYTHON_ENV, sys.executable)  # a Python without vlmeval
    assert "has no vlmeval" in (b.available() or "")


def test_answer_key_through_the_driver(tmp_path: Path, fake_vlmeval: None) -> None:
    rules = answer_key()
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0, policy="scripted", script_rules=rules)) as sim:
        res = get_backend("VLMEvalKit").run(
            BackendRun(eval_config=documented(sim.url + "/v1/chat/completions"), run_dir=tmp_path, limit=None)
        )
        truth = sim.fetch_truth()
    rep = res.reports["sim-model"][TSV_NAME]
    assert rep["score"] == 1.0 and rep["num_samples"] == 20 and rep["backend"] == "VLMEvalKit"
    assert {c["name"]: c["score"] for c in rep["categories"]} == {
        "colour": 1.0,
        "count": 1.0,
        "position": 1.0,
        "shape": 1.0,
    }
    asked = [t for t in truth if t["prompt_tokens"] > 1]  # not the 1-token preflight probe
    assert len(asked) == 20 and all(t["status"] == 200 for t in asked)  # the image parts passed the check
    assert json.loads((tmp_path / "reports" / "sim-model" / f"{TSV_NAME}.json").read_text()) == rep
    assert (tmp_path / "LMUData" / f"{TSV_NAME}.tsv").read_text() == DATA_FILE.read_text()
    assert "fake vlmeval: sim-model" in (tmp_path / "logs" / "VLMEvalKit.log").read_text()
    out = io.StringIO()
    print_table("sim-model", res.reports["sim-model"], out)
    assert "[colour]" in out.getvalue() and "[position]" in out.getvalue()  # category names are not markup


def test_choice_policy_score_matches_the_simulator(tmp_path: Path, fake_vlmeval: None) -> None:
    want = expected_choice(seed=5)
    rows = read_tsv()
    acc = sum(want[r["index"]] == r["answer"] for r in rows) / len(rows)
    cfg = documented("")
    cfg["limit"] = None
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0, policy="choice", seed=5)) as sim:
        cfg["model"][0]["api_base"] = sim.url  # a bare base URL is completed to /v1/chat/completions
        res = get_backend("VLMEvalKit").run(BackendRun(eval_config=cfg, run_dir=tmp_path))
    rep = res.reports["sim-model"][TSV_NAME]
    assert rep["num_samples"] == 24 and rep["score"] == pytest.approx(acc)


def test_key_reaches_the_endpoint_and_no_file(tmp_path: Path, fake_vlmeval: None) -> None:
    secret = "sk-vlm-secret-77"
    with SimProcess(
        SimConfig(ttft_ms=1, itl_ms=0, policy="scripted", script_rules=answer_key(), api_key=secret)
    ) as sim:
        cfg = documented(sim.url + "/v1")
        cfg["model"][0]["key"] = secret
        ok = get_backend("VLMEvalKit").run(BackendRun(eval_config=cfg, run_dir=tmp_path / "a", limit=4))
        cfg["model"][0]["key"] = "wrong"
        with pytest.raises(
            EndpointError, match="rejected the API key"
        ) as err:  # preflight, before VLMEvalKit
            get_backend("VLMEvalKit").run(BackendRun(eval_config=cfg, run_dir=tmp_path / "b", limit=4))
        assert err.value.exit_code == 3
        assert not (tmp_path / "b" / "logs" / "VLMEvalKit.log").exists()
        cfg["model"][0]["key"] = secret
        cfg["model"][0]["type"] = "other-model"
        with pytest.raises(EndpointError, match="not served"):
            get_backend("VLMEvalKit").run(BackendRun(eval_config=cfg, run_dir=tmp_path / "c", limit=4))
    assert ok.reports["sim-model"][TSV_NAME]["score"] == 1.0
    with pytest.raises(
        EndpointError, match=r"cannot reach|refused|connect"
    ):  # nothing listens there any more
        get_backend("VLMEvalKit").run(BackendRun(eval_config=cfg, run_dir=tmp_path / "d", limit=4))
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert secret not in p.read_text(errors="replace"), p


def test_dataset_dir(tmp_path: Path, fake_vlmeval: None) -> None:
    dd = tmp_path / "datasets" / "vlmeval"
    dd.mkdir(parents=True)
    lines = DATA_FILE.read_text().splitlines()
    (dd / "MyMCQ.tsv").write_text("\n".join(lines[:4]) + "\n")
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0, policy="scripted", script_rules=answer_key())) as sim:
        cfg = documented(sim.url + "/v1")
        cfg["data"] = ["MyMCQ"]
        res = get_backend("VLMEvalKit").run(
            BackendRun(eval_config=cfg, run_dir=tmp_path / "r", dataset_dir=tmp_path / "datasets")
        )
        assert (
            res.reports["sim-model"]["MyMCQ"]["score"] == 1.0
            and res.reports["sim-model"]["MyMCQ"]["num_samples"] == 3
        )
        cfg["data"] = ["Absent"]
        with pytest.raises(DatasetError, match=r"Absent\.tsv"):
            get_backend("VLMEvalKit").run(
                BackendRun(eval_config=cfg, run_dir=tmp_path / "s", dataset_dir=tmp_path / "datasets")
            )


def native_hits(tmp_path: Path, url: str, limit: int | None) -> dict[str, bool]:
    """index -> correct, from our own eval of ``image_mcq`` (same prompt text, image as an image_url part)."""
    from evalscope.eval.runner import run_eval

    cfg = {"model": "sim-model", "api_url": url + "/v1", "datasets": ["image_mcq"], "limit": limit}
    res = run_eval({**cfg, "work_dir": str(tmp_path)}, out=io.StringIO())
    journal = next(res.run_dir.glob("journal/image_mcq.jsonl"))
    rows = [json.loads(ln) for ln in journal.read_text().splitlines() if ln]
    return {str(r["sample_id"]): r["score"] == 1.0 for r in rows if "sample_id" in r}


def test_native_image_mcq_answers_like_the_simulator(tmp_path: Path) -> None:
    want = expected_choice(seed=5)
    rows = {r["index"]: r for r in read_tsv()}
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0, policy="choice", seed=5)) as sim:
        hits = native_hits(tmp_path, sim.url, None)
        truth = sim.fetch_truth()
    assert len(hits) == 24 and all(t["status"] == 200 for t in truth)
    assert hits == {i: want[i] == rows[i]["answer"] for i in rows}


@pytest.mark.skipif(
    not os.environ.get(PYTHON_ENV), reason=f"set {PYTHON_ENV} to a Python with ms-vlmeval (nox -s vlmeval)"
)
def test_real_vlmevalkit(tmp_path: Path) -> None:
    """The original's documented dict, run by the real VLMEvalKit: its exact-matching verdict for every sample
    agrees with the letter the simulator answered (computed here from the simulator's seeded policy)."""
    want = expected_choice(seed=5, limit=20)
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0, policy="choice", seed=5)) as sim:
        res = get_backend("VLMEvalKit").run(
            BackendRun(eval_config=documented(sim.url + "/v1/chat/completions"), run_dir=tmp_path)
        )
        native = native_hits(tmp_path / "native", sim.url, 20)
    rep = res.reports["sim-model"][TSV_NAME]
    samples = [
        json.loads(ln)
        for ln in (tmp_path / "outputs" / "sim-model" / f"sim-model_{TSV_NAME}_evalscope_samples.jsonl")
        .read_text()
        .splitlines()
    ]
    assert len(samples) == 20 == rep["num_samples"]
    rows = {r["index"]: r for r in read_tsv()}
    for s in samples:
        assert bool(s["hit"]) == (want[str(s["index"])] == rows[str(s["index"])]["answer"]), s
    assert rep["score"] == pytest.approx(sum(bool(s["hit"]) for s in samples) / 20)
    # cross-check: our extraction and VLMEvalKit's exact matching give every sample the same verdict
    assert {str(s["index"]): bool(s["hit"]) for s in samples} == native
