"""``get_backend("ThirdParty")`` end to end against the simulator: ToolBench-static with tool calls through the
OpenAI ``tools`` field, scored and converted into our report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from evalscope.errors import ConfigError, DatasetError, EndpointError
from evalscope.eval.backends.base import BackendRun, get_backend
from evalscope.eval.backends.thirdparty import SAMPLE_DIR
from evalscope.eval.backends.toolbench_score import parse_step
from evalscope.sim import SimConfig, SimProcess
from evalscope.sim.config import ScriptRule

pytestmark = [pytest.mark.timeout(120), pytest.mark.integration]

CFG = {
    "tool": "ToolBench",
    "infer_args": {"output_dir": "output_res"},
    "eval_args": {"output_path": "output_res"},
}


def answer_key(
    sabotage: dict[str, str] | None = None,
) -> list[ScriptRule]:
    """Scripted rules that answer every sample step with its reference (``sabotage``: id -> function name to
    call instead). Steps with history come first: their last message (a tool result) is what tells them apart."""
    items = []
    for dom in ("in_domain", "out_of_domain"):
        items += json.loads((SAMPLE_DIR / f"{dom}.json").read_text())
    items.sort(key=lambda it: -len(it["messages"]))
    rules = []
    for it in items:
        ref = parse_step(it["target"])
        if ref.plan == "give up":
            tc: dict[str, Any] = {"name": "Finish", "arguments": {"return_type": "give_up_and_restart"}}
        else:
            tc = {"name": ref.action, "arguments": json.loads(ref.arguments or "{}")}
        if sabotage and it["id"] in sabotage:
            tc = {"name": sabotage[it["id"]], "arguments": {}}
        rules.append(ScriptRule(pattern=re.escape(it["messages"][-1]["content"]), tool_call=tc))
    return rules


def run(tmp_path: Path, sim: SimProcess, **kw: Any) -> Any:
    cfg = kw.pop("eval_config", CFG)
    return get_backend("ThirdParty").run(
        BackendRun(eval_config=cfg, run_dir=tmp_path, api_url=sim.url + "/v1", model="sim-model", **kw)
    )


def test_answer_key_scores_perfectly_and_report_shape(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0, policy="scripted", script_rules=answer_key())) as sim:
        res = run(tmp_path, sim)
    rep = res.reports["sim-model"]["toolbench_static"]
    assert rep["metrics"] == {
        "Plan.EM": 1.0,
        "Act.EM": 1.0,
        "HalluRate": 0.0,
        "Avg.F1": 1.0,
        "R-L": pytest.approx(1.0),
        "Easy.F1": 1.0,
        "Hard.F1": 1.0,
    }
    assert rep["score"] == 1.0 and rep["metric"] == "Avg.F1" and rep["backend"] == "ThirdParty"
    assert rep["num_samples"] == 12 and [s["name"] for s in rep["subsets"]] == ["in_domain", "out_of_domain"]
    on_disk = json.loads((tmp_path / "reports" / "sim-model" / "toolbench_static.json").read_text())
    assert on_disk == rep and res.paths == [tmp_path / "reports" / "sim-model" / "toolbench_static.json"]
    preds = json.loads((tmp_path / "output_res" / "in_domain" / "predictions.json").read_text())
    assert len(preds) == 7 and all("predictions" in p for p in preds)  # the original's layout
    assert (tmp_path / "output_res" / "out_of_domain" / "metrics.json").is_file()
    assert (
        res.log_path == tmp_path / "logs" / "ThirdParty.log"
        and "in_domain: 7 steps" in res.log_path.read_text()
    )


def test_hallucinated_and_wrong_calls_are_counted(tmp_path: Path) -> None:
    rules = answer_key({"tb-in-01": "get_weather_now", "tb-out-02": "detect_language"})
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0, policy="scripted", script_rules=rules)) as sim:
        res = run(tmp_path, sim, limit=None)
    m = res.reports["sim-model"]["toolbench_static"]["metrics"]
    assert m["HalluRate"] == pytest.approx(1 / 12)  # get_weather_now is not offered
    assert m["Act.EM"] == pytest.approx(7 / 9)  # 9 reference calls, two wrong
    assert m["Plan.EM"] == 1.0  # a wrong call is still the plan "call"


def test_heuristic_policy_figures_and_limit(tmp_path: Path) -> None:
    """The default ``match`` tool policy: calls the tool sharing words with the question, answers with text
    after a tool result. Figures are fixed by the sample (see docs/backends.md)."""
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0, seed=1)) as sim:
        res = run(tmp_path, sim, api_key=None)
        limited = run(tmp_path / "lim", sim, limit=2)
    m = res.reports["sim-model"]["toolbench_static"]["metrics"]
    assert m["Plan.EM"] == pytest.approx(
        10 / 11
    )  # the give-up step is left out (the prediction named a call)
    assert m["Act.EM"] == pytest.approx(8 / 9)
    assert m["HalluRate"] == 0.0
    assert 0.5 < m["Avg.F1"] < 0.9 and m["R-L"] < 0.2
    assert limited.reports["sim-model"]["toolbench_static"]["num_samples"] == 4  # 2 per domain


def test_api_key_reaches_the_endpoint_but_no_file(tmp_path: Path) -> None:
    secret = "sk-toolbench-secret-42"
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0, api_key=secret)) as sim:
        res = run(tmp_path, sim, api_key=secret, limit=1)
        assert res.reports["sim-model"]["toolbench_static"]["errored"] == 0
        with pytest.raises(EndpointError):
            run(tmp_path / "nokey", sim, limit=1)
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert secret not in p.read_text(errors="replace"), p


def test_config_errors(tmp_path: Path) -> None:
    b = get_backend("thirdparty")
    assert b.available() is None
    with pytest.raises(ConfigError, match="--api-url"):
        b.run(BackendRun(eval_config=CFG, run_dir=tmp_path))
    with pytest.raises(ConfigError, match="ToolBench"):
        b.run(BackendRun(eval_config={"tool": "Other"}, run_dir=tmp_path, api_url="http://127.0.0.1:9/v1"))
    with pytest.raises(DatasetError, match="data_path"):
        cfg = {"infer_args": {"data_path": str(tmp_path / "absent")}}
        b.run(BackendRun(eval_config=cfg, run_dir=tmp_path, api_url="http://127.0.0.1:9/v1"))


def test_dataset_dir_layout_is_used(tmp_path: Path) -> None:
    dd = tmp_path / "datasets" / "toolbench_static"
    dd.mkdir(parents=True)
    items = json.loads((SAMPLE_DIR / "in_domain.json").read_text())[:3]
    (dd / "in_domain.json").write_text(json.dumps(items))
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0)) as sim:
        res = run(tmp_path / "run", sim, dataset_dir=tmp_path / "datasets")
    rep = res.reports["sim-model"]["toolbench_static"]
    assert rep["num_samples"] == 3 and [s["name"] for s in rep["subsets"]] == ["in_domain"]
