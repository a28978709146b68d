"""The Python API: multi-stage runs with warm-up, saved responses, vllm profile, never overwriting runs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from evalscope.perf.config import PerfConfig
from evalscope.perf.report import ConsoleReporter
from evalscope.perf.runner import run_perf
from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.integration]


@pytest.mark.timeout(90)
def test_stages_warmup_responses_and_report(tmp_path: Path) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    reporter = ConsoleReporter(console, live=True)
    with SimProcess(SimConfig(ttft_ms=20, itl_ms=2, output_tokens=6)) as sim:
        cfg = PerfConfig(
            url=sim.url + "/v1",
            parallel=[1, 4],
            number=[4, 12],
            warmup=3,
            sleep_interval=0,
            max_tokens=6,
            save_responses=True,
            outputs_dir=tmp_path,
            name="api test",
            goodput={"ttft": 1000},
            percentiles=[50, 99.99],
        )
        summary = run_perf(cfg, reporter=reporter)
        summary2 = run_perf(cfg)  # same name, same second: a new directory
        truth_ids = {t["request_id"] for t in sim.fetch_truth()}
    reporter.final(summary)
    out = buf.getvalue()
    assert summary["status"] == "completed"
    assert [s["requests"]["sent"] for s in summary["stages"]] == [4, 12]
    assert [s["parallel"] for s in summary["stages"]] == [1, 4]
    assert summary["stages"][1]["goodput"]["good"] == 12
    assert "p9999" in summary["stages"][0]["ttft"]
    assert summary2["run_dir"] != summary["run_dir"]
    records = [json.loads(x) for x in (Path(summary["run_dir"]) / "records.jsonl").read_text().splitlines()]
    assert sum(1 for r in records if r.get("warmup")) == 3
    assert sum(1 for r in records if not r.get("warmup")) == 16
    assert all(r["text"] for r in records)
    # the simulator counts words: client tokenizer and server usage agree exactly
    dis = summary["stages"][1]["token_disagreement"]
    assert dis["requests"] == 12 and dis["relative_difference"] == 0
    assert {"warmup-0", "0", "15"} <= truth_ids
    assert "Latency (ms) across stages" in out and "Throughput" in out
    for line in out.splitlines():
        assert len(line) <= 80, line


@pytest.mark.timeout(60)
def test_vllm_profile_and_no_stream(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=20, itl_ms=5, output_tokens=10, tokens_per_chunk=2)) as sim:
        s = run_perf(url=sim.url, number=5, max_tokens=10, outputs_dir=tmp_path, metric_profile="vllm")
        ns = run_perf(url=sim.url, number=5, max_tokens=10, outputs_dir=tmp_path, stream=False)
    st = s["stages"][0]
    assert st["itl"]["count"] == 5 * 4  # raw per-chunk gaps: 5 chunks per request
    assert st["tpot"]["mean"] == pytest.approx(5.0, abs=1.5)
    nst = ns["stages"][0]
    assert nst["requests"]["succeeded"] == 5 and nst["itl"] is None
    assert nst["e2e_latency"]["mean"] > 60


@pytest.mark.timeout(60)
def test_default_itl_spreads_multi_token_chunks(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=20, itl_ms=5, output_tokens=10, tokens_per_chunk=2)) as sim:
        s = run_perf(url=sim.url, number=5, max_tokens=10, outputs_dir=tmp_path)
    st = s["stages"][0]
    # chunks of 2 tokens every 10 ms: per-token ITL 5 ms, per-chunk ICL 10 ms
    assert st["itl"]["mean"] == pytest.approx(5.0, abs=1.0)
    assert st["icl"]["mean"] == pytest.approx(10.0, abs=2.0)
