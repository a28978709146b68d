"""What real servers send that the simulator did not: server-side numbers, stream endings, /metrics gauges.

Each test runs ``evalscope perf`` as a subprocess against the simulator (in its own process) configured to
behave like one real server (llama.cpp's ``timings`` and speculative decoding, a prefix cache's
``cached_tokens``, llama-cpp-python's missing stream usage, transformers serve's missing ``[DONE]``), and
checks that the numbers reach records.jsonl, summary.json and the terminal tables.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.integration]


def run_cli(
    args: list[str], timeout: float = 120, cpus: set[int] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    env["COLUMNS"] = "120"
    return subprocess.run(
        [sys.executable, "-m", "evalscope", "perf", "--no-live", *args],
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def load(outputs: Path) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    dirs = sorted(p for p in outputs.iterdir() if p.is_dir())
    assert len(dirs) == 1, dirs
    d = dirs[0]
    summary = json.loads((d / "summary.json").read_text())
    records = [json.loads(line) for line in (d / "records.jsonl").read_text().splitlines() if line]
    return d, summary, records


def base_args(url: str, out: Path, n: int = 12, max_tokens: int = 32) -> list[str]:
    return ["--url", url, "--parallel", "4", "--number", str(n), "--max-tokens", str(max_tokens),
            "--outputs-dir", str(out), "--workers", "1"]  # fmt: skip


@pytest.mark.timeout(120)
def test_stream_without_usage_counts_events(tmp_path: Path) -> None:
    """llama-cpp-python never sends usage in a stream: every request still succeeds, tokens are counted."""
    with SimProcess(SimConfig(stream_usage=False, ttft_ms=5, itl_ms=2, output_tokens=20)) as sim:
        r = run_cli(base_args(sim.url, tmp_path))
    assert r.returncode == 0, r.stderr
    _, summary, records = load(tmp_path)
    st = summary["stages"][0]
    assert st["requests"]["succeeded"] == 12
    assert st["token_source"] == "events"
    assert all(rec["completion_tokens"] == 20 and rec["cached_tokens"] is None for rec in records)


@pytest.mark.timeout(120)
def test_stream_without_done_is_a_success(tmp_path: Path) -> None:
    """transformers serve ends a stream after the finish_reason chunk, with no [DONE]: a success, and its end
    time is the end of the body, not a read timeout later."""
    with SimProcess(SimConfig(send_done=False, ttft_ms=5, itl_ms=2, output_tokens=20)) as sim:
        r = run_cli([*base_args(sim.url, tmp_path), "--read-timeout", "30"])
        truth = {t["request_id"]: t for t in sim.fetch_truth()}
    assert r.returncode == 0, r.stderr
    _, summary, records = load(tmp_path)
    assert summary["stages"][0]["requests"]["succeeded"] == 12
    for rec in records:
        assert rec["status"] == "ok" and rec["finish_reason"] == "stop"
        assert (rec["end_ns"] - rec["sent_ns"]) / 1e9 < 5.0  # not held until the 30 s read timeout
    assert all(t["outcome"] == "ok" for t in truth.values() if t["endpoint"] == "chat")


@pytest.mark.timeout(120)
def test_prefix_cache_hits_reach_records_summary_and_table(tmp_path: Path) -> None:
    """usage.prompt_tokens_details.cached_tokens is recorded per request and summed into a hit rate."""
    cfg = SimConfig(prefix_cache=True, prefix_block=16, ttft_ms=5, itl_ms=2, output_tokens=8)
    with SimProcess(cfg) as sim:
        args = base_args(sim.url, tmp_path, n=16, max_tokens=8)
        args += ["--dataset", "random", "--prefix-length", "64", "--min-prompt-length", "96",
                 "--max-prompt-length", "128"]  # fmt: skip
        r = run_cli(args)
        truth = {t["request_id"]: t for t in sim.fetch_truth()}
    assert r.returncode == 0, r.stderr
    _, summary, records = load(tmp_path)
    by_id = {str(rec["id"]): rec for rec in records}
    for rid, rec in by_id.items():
        assert rec["cached_tokens"] == truth[rid]["cached_tokens"], rid
    cached = sum(rec["cached_tokens"] for rec in records)
    prompt = sum(rec["prompt_tokens"] for rec in records)
    assert cached >= 48 * (len(records) - 4)  # all but the first few share the 64-token prefix
    pc = summary["stages"][0]["server"]["prefix_cache"]
    assert pc["requests"] == 16 and pc["cached_tokens"] == cached
    assert pc["hit_rate"] == pytest.approx(cached / prompt)
    assert "cache hit" in r.stdout and f"{100 * cached / prompt:.1f}%" in r.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stream", [True, False])
def test_llamacpp_timings_and_speculative_acceptance(tmp_path: Path, stream: bool) -> None:
    """llama.cpp's timings object (prompt/decode tokens and ms, drafts proposed and accepted) reaches records,
    the summary (prefill and decode tokens/s, acceptance rate, tokens per iteration) and the table."""
    cfg = SimConfig(
        timings=True, draft_acceptance=0.75, tokens_per_chunk=4, ttft_ms=5, itl_ms=1, output_tokens=32
    )
    with SimProcess(cfg) as sim:
        r = run_cli(base_args(sim.url, tmp_path) + ([] if stream else ["--no-stream"]))
    assert r.returncode == 0, r.stderr
    _, summary, records = load(tmp_path)
    for rec in records:
        t = rec["timings"]
        assert t["predicted_n"] == 32 and t["prompt_n"] == rec["prompt_tokens"]
        assert t["draft_n_accepted"] == 24 and t["draft_n"] == 32  # 8 steps of 4 tokens at 75% acceptance
        assert t["prompt_ms"] > 0 and t["predicted_ms"] >= 0
    server = summary["stages"][0]["server"]
    assert server["timings"]["requests"] == 12 and server["timings"]["predicted_n"] == 12 * 32
    assert server["timings"]["prompt_tokens_per_s"] > 0
    assert server["speculative"]["acceptance_rate"] == pytest.approx(0.75)
    assert "draft accept" in r.stdout and "75.0%" in r.stdout and "decode tok/s" in r.stdout
    if stream:
        assert server["decoded_tokens_per_iter"]["mean"] == pytest.approx(31 / 7)
        assert "tok/iter" in r.stdout


@pytest.mark.timeout(180)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_server_metrics_are_scraped_per_stage(tmp_path: Path, workers: str) -> None:
    """--server-metrics scrapes the simulator's Prometheus page every second, in-process and in the
    coordinator of a worker run: a timeline file, min/mean/max per stage, a terminal line."""
    with SimProcess(SimConfig(ttft_ms=5, itl_ms=20, output_tokens=100)) as sim:
        args = base_args(sim.url, tmp_path, n=8, max_tokens=100)
        args[args.index("--workers") + 1] = workers
        r = run_cli([*args, "--server-metrics", sim.url])
    assert r.returncode == 0, r.stderr
    d, summary, _ = load(tmp_path)
    lines = [json.loads(x) for x in (d / "server_metrics.jsonl").read_text().splitlines()]
    assert len(lines) >= 3 and all("values" in x for x in lines)
    sm = summary["stages"][0]["server_metrics"]
    assert sm["url"] == sim.url + "/metrics" and sm["failures"] == 0 and sm["scrapes"] >= 2
    running = sm["series"]["vllm:num_requests_running"]
    assert running["max"] >= 1 and running["max"] <= 4 and running["min"] >= 0
    assert 0 < sm["series"]["vllm:kv_cache_usage_perc"]["max"] < 1
    assert "server metrics (stage 1" in r.stdout and "vllm:num_requests_running" in r.stdout


@pytest.mark.timeout(120)
def test_server_metrics_failures_are_counted_not_fatal(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/metrics"  # bound, not listening: refused
        with SimProcess(SimConfig(ttft_ms=5, itl_ms=20, output_tokens=60)) as sim:
            r = run_cli([*base_args(sim.url, tmp_path, n=8, max_tokens=60), "--server-metrics", dead])
    assert r.returncode == 0, r.stderr
    _, summary, _ = load(tmp_path)
    sm = summary["stages"][0]["server_metrics"]
    assert sm["failures"] >= 1 and sm["scrapes"] == 0 and sm["last_error"]
    assert "failed scrapes" in r.stdout


def test_server_metrics_url_must_be_http(tmp_path: Path) -> None:
    r = run_cli(["--server-metrics", "ftp://x/metrics", "--number", "1", "--outputs-dir", str(tmp_path)])
    assert r.returncode == 2
    assert "server" in r.stderr.lower() and "Traceback" not in r.stderr
